"""A learned tagger for person names: a linear model over word pieces, shipped in the package.

Rules find a name when a title, label or honorific stands beside it; most names in running text
have none ("홍길동 010-1234-5678", "트럼프 대통령은", "카메론 디아즈가 출연한"). This tagger labels each
piece of the text (a Hangul run, a Latin word, a digit run or one punctuation mark) with how many
of its first characters belong to a name: ``O``, ``B1``…``B4``/``BW`` (a name starts here and covers
1–4 characters or the whole piece) and ``I…`` (a name continues here: "John Smith", "카메론 디아즈").

Why this shape: the scanner's whole budget is 0.3 ms/KB, so the tagger must cost well under a
microsecond per piece. A piece's label is a softmax over the sum of five weight vectors — the
piece's own features and those of the two pieces before and the two after it — and each vector
depends on one piece alone, so it is computed once per distinct piece and cached in a NumPy table;
a text is tagged with one row gather, four shifted adds and a gate that keeps the few pieces where
a name can start, no candidate windows.

What a piece's features say: its syllables, stem and particle, surname and given-name shape, the
titles and roles around it, and whether Kiwi's dictionaries (kiwipiepy_model, Apache-2.0) list it
as the first or last word of a person's name, a proper noun, a word of a place or firm, or a common
word (`Lexicon`). Kiwi itself tokenises at ~13 ms/KB, far over budget, so its word lists are read
once at training time and shipped with the weights: the piece is looked up, never analysed.

The weights are trained with python-crfsuite on single-piece sequences (a maximum-entropy
classifier) by scripts/train_names.py and shipped as models/names.npz with a gazetteer of the
training names (KLUE-NER, CC BY-SA 4.0, and synthetic sentences) and the word lists; inference
needs NumPy only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from itertools import accumulate, chain
from pathlib import Path
from typing import NamedTuple, cast

import numpy as np

from nuri.privacy.detectors.person import GIVEN, HISTORICAL, PARTICLES, STOP, SURNAMES_1, SURNAMES_2, TITLES

MODEL_PATH = Path(__file__).resolve().parent / "models" / "names.npz"

# A piece (a Hangul run, a Latin word, a digit run, one other mark) with the whitespace before it: the tokens tile the text, so offsets are running sums of
# lengths (itertools.accumulate, at C speed), and the whitespace itself is a feature. The four
# kinds start with disjoint characters, so their order and possessive runs (nothing to give back)
# change no match: the commonest kinds in Korean text come first, 28 → 17 µs on a 1 KB request.
TOKEN = re.compile(r"\s*+(?:[가-힣]++|[^\s가-힣A-Za-z\d]|\d++|[A-Za-z]++(?:['’][A-Za-z]+)?+)")
_SUFFIXES = frozenset(PARTICLES) | frozenset(TITLES) | frozenset((
    "씨의", "씨는", "씨가", "씨를", "씨와", "씨에게", "님과", "님을", "님도", "님께서", "은", "는", "이", "가", "을",
    "를", "의", "와", "과", "도", "만", "에", "로", "으로", "에서", "에게", "까지", "처럼", "이다", "다", "이고",
    "고객님", "고객님의", "감독의", "감독이", "감독은", "씨께", "측", "측은", "군의", "양의", "등", "등이", "등은",
    "대표는", "대표가", "대표의", "회장은", "회장이", "회장의", "의원은", "의원이", "의원의", "선수는", "선수가",
    "선수의", "대통령은", "대통령이", "대통령의", "교수는", "교수가", "교수의", "기자", "님이", "님은", "님의",
    "총리는", "총리가", "총리의", "장관은", "장관이", "장관의", "감독", "감독님", "선수", "대통령", "총리", "장관",
    "씨도", "님도", "에게서", "한테", "라고", "이라고", "이라는", "라는", "와의", "과의", "에게는", "부부",
))
_MAX_SUFFIX = max(len(s) for s in _SUFFIXES)
_SUR1 = frozenset(SURNAMES_1)
_SUR2 = frozenset(SURNAMES_2)
_STOPWORDS = STOP - frozenset(TITLES)
# Titles and roles that follow a name (김 대표, 트럼프 대통령, 이 팀장), as one feature.
_ROLE_WORDS = frozenset(TITLES) | frozenset((
    "대표", "회장", "의원", "장관", "총리", "대통령", "감독", "선수", "배우", "가수", "교수", "기자", "위원장",
    "전", "前", "당선인", "후보", "후보자", "대변인", "원내대표", "시장", "지사", "교육감", "병장", "상병", "일병",
    "이병", "하사", "중사", "대법관", "판사", "검사", "변호사", "부장판사", "사장", "부사장", "전무", "이사장",
    "총재", "의장", "단장", "주장", "투수", "타자", "외야수", "내야수", "포수", "공격수", "수비수", "미드필더",
    "골키퍼", "래퍼", "작가", "시인", "화백", "명창", "역", "役", "여사", "씨", "옹", "선생", "국장", "차관",
))
# Syllables frequent in transliterated foreign names and rare in native words (스, 즈, 트 …).
_LOANWORD = frozenset("스즈트크드르브프그츠쯔슈츄퓨뮤튜듀큐르리니샤셰쇼슨튼든픈벤렌젠켄펜런턴먼던슨톰존잭짐폴칼")
LABELS = ("O", "B1", "B2", "B3", "B4", "BW", "I1", "I2", "I3", "I4", "IW")
_NB, _W = 5, 4        # in O-relative rows: B1…B4 BW are columns 0–4, I1…I4 IW 5–9; BW and IW are index 4 of theirs


def _cls(ch: str) -> str:
    if "가" <= ch <= "힣":
        return "H"
    if ch.isascii() and ch.isalpha():
        return "A" if ch.isupper() else "a"
    if ch.isdigit():
        return "D"
    return "P"


def _split(tok: str) -> tuple[str, str]:
    """(stem, suffix): the longest particle/title ending that leaves at least one syllable."""
    for k in range(min(_MAX_SUFFIX, len(tok) - 1), 0, -1):
        if tok[-k:] in _SUFFIXES:
            return tok[:-k], tok[-k:]
    return tok, ""


class Lexicon(NamedTuple):
    """Word lists from Kiwi's dictionaries, each a feature of the pieces found in it."""
    first: frozenset[str] = frozenset()     # first words of people's names (존, 제니퍼, 도요토미)
    last: frozenset[str] = frozenset()      # last words of people's names (스미스, 프리먼)
    proper: frozenset[str] = frozenset()    # one-word proper nouns: people, places, works (송새벽, 창덕궁)
    other: frozenset[str] = frozenset()     # words of places, teams, works and firms, not people
    common: frozenset[str] = frozenset()    # common nouns, adverbs, determiners (학부모, 더욱, 우리)


NO_LEXICON = Lexicon()


def _own(tok: str, gaz: frozenset[str] = frozenset(), lex: Lexicon = NO_LEXICON) -> tuple[list[str], list[str], list[str]]:
    """Features of a piece as itself, as the piece before another, and as the piece after."""
    c0 = _cls(tok[0])
    n = len(tok)
    if c0 == "H":
        stem, sfx = _split(tok)
        own = ["w=" + tok, "st=" + stem, "sf=" + sfx, f"sh=H{min(n, 7)}", f"sl={min(len(stem), 6)}",
               "p1=" + tok[0], "p2=" + tok[:2], "p3=" + tok[:3], "e1=" + stem[-1], "e2=" + stem[-2:]]
        own += ["bg=" + stem[i:i + 2] for i in range(min(len(stem) - 1, 6))]
        own += ["u=" + ch for ch in stem[:6]]
        own += [f"a{k}=" + tok[k] for k in range(1, min(n, 5))]        # what follows the first k syllables
        f = sum(ch in _LOANWORD for ch in stem)
        if f:
            own.append(f"lw={min(f, 3)}")
        sur = tok[0] in _SUR1
        if tok[:2] in _SUR2:
            own.append("sur2")
            sur = True
        if sur:
            g = sum(ch in GIVEN for ch in stem[1:3])
            own.append(f"sur:{min(len(stem), 5)}:{g}")
        if stem in _STOPWORDS or tok in _STOPWORDS:
            own.append("stop")
        if stem in HISTORICAL:
            own.append("hist")
        prev, nxt = ["P=" + tok, "Pst=" + stem, "Psf=" + sfx], ["N=" + tok, "Nst=" + stem, "Nsf=" + sfx]
        if stem in _ROLE_WORDS:
            own.append("ti")
            prev.append("Pti")
            nxt.append("Nti")
        elif n == 1 and tok in _SUR1:
            own.append("s1")
        for key, words in zip(("kf", "kl", "kp", "ko", "kc"), lex, strict=True):
            if stem in words or tok in words:
                own.append(key)
                prev.append("P" + key)
                nxt.append("N" + key)
        if "kc" not in own:
            for k in range(len(stem) - 1, 1, -1):
                if stem[:k] in lex.common:
                    own.append(f"kcp{min(k, 3)}")       # a common word and more (유사한, 신동엽)
                    break
        if gaz:
            if stem in gaz or tok in gaz:
                own.append("gz")
                prev.append("Pgz")
                nxt.append("Ngz")
            else:
                for k in range(min(len(stem), 5) - 1, 1, -1):
                    if tok[:k] in gaz:
                        own.append(f"gzp{k}")          # a known name with an unlisted ending (김기덕스럽다)
                        break
        return own, prev, nxt
    if c0 in "Aa":
        low = tok.lower()
        shape = "Aa" if c0 == "A" and tok[1:].islower() else ("AA" if tok.isupper() else c0)
        own = ["w=" + low, "sh=" + shape, f"ln={min(n, 8)}", "e2=" + low[-2:], "e3=" + low[-3:]]
        if low in gaz:
            return [*own, "gz"], ["P=" + low, "Psh=" + shape, "Pgz"], ["N=" + low, "Nsh=" + shape, "Ngz"]
        return own, ["P=" + low, "Psh=" + shape], ["N=" + low, "Nsh=" + shape]
    if c0 == "D":
        return [f"sh=D{min(n, 5)}"], [f"Psh=D{min(n, 5)}"], [f"Nsh=D{min(n, 5)}"]
    return ["w=" + tok], ["P=" + tok], ["N=" + tok]




Parts = tuple[list[str], list[str], list[str], list[str], list[str]]


def token_features(tok: str, gaz: frozenset[str] = frozenset(), lex: Lexicon = NO_LEXICON) -> Parts:
    """A token's features as itself, as the previous piece, the next, the one before that and the one
    after that; whitespace before it says whether it is glued to the previous piece or on a new line."""
    piece = tok.lstrip()
    own, prev, nxt = _own(piece, gaz, lex)
    if len(piece) == len(tok):
        own = [*own, "glued"]
    elif "\n" in tok:
        own = [*own, "nl"]
        prev = [*prev, "Pnl"]
    return own, prev, nxt, ["Q" + f[1:] for f in prev[:2]], ["R" + f[1:] for f in nxt[:2]]


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def tokenize(text: str) -> list[tuple[int, int]]:
    """(start, end) of each piece of `text`."""
    toks = tokens(text)
    return [(e - len(t.lstrip()), e) for t, e in zip(toks, accumulate(map(len, toks)), strict=True)]


_BOS = "P=<s>"
_EOS = "N=</s>"


def gazetteer(names: Iterable[str]) -> frozenset[str]:
    """The words of known names (Hangul as written, Latin lower-cased), for the ``gz`` features."""
    out = set()
    for name in names:
        for w in name.split():
            if "가" <= w[0] <= "힣" and len(w) >= 2 or w.isascii() and w.isalpha() and len(w) >= 3:
                out.add(w.lower() if w.isascii() else w)
    return frozenset(out)


def features(text: str, gaz: frozenset[str] = frozenset(), lex: Lexicon = NO_LEXICON) -> list[list[str]]:
    """One feature list per piece of `text`: its own and those of the two pieces on either side."""
    feats = [token_features(t, gaz, lex) for t in tokens(text)]
    last = len(feats) - 1
    return [f[0] + (feats[i - 1][1] if i else [_BOS]) + (feats[i + 1][2] if i < last else [_EOS])
            + (feats[i - 2][3] if i > 1 else []) + (feats[i + 2][4] if i + 1 < last else [])
            for i, f in enumerate(feats)]


def labels(pieces: Sequence[tuple[int, int]], spans: Iterable[tuple[int, int]]) -> list[str]:
    """Training labels of `pieces` for gold name `spans` (a name starting inside a piece is left out)."""
    out = ["O"] * len(pieces)
    starts = {a: i for i, (a, _) in enumerate(pieces)}
    for s, e in spans:
        i = starts.get(s)
        if i is None:
            continue
        first = True
        while i < len(pieces) and pieces[i][0] < e:
            a, b = pieces[i]
            k = min(e, b) - a
            out[i] = ("B" if first else "I") + ("W" if a + k == b else str(min(k, 4)))
            first = False
            i += 1
    return out


def pack_words(words: Iterable[str]) -> np.ndarray:
    """A word list as the UTF-8 bytes of its sorted words, one a line: a fraction of the size of a
    NumPy string array (four bytes a character), and read back with one decode and one split."""
    return np.frombuffer("\n".join(sorted(words)).encode(), np.uint8)


def unpack_words(blob: np.ndarray) -> frozenset[str]:
    text = blob.tobytes().decode()
    return frozenset(text.split("\n")) if text else frozenset()


_FLOOR = 0.2          # names below this probability are not even returned
# A start with probability p ≥ _FLOOR has ΣB ≥ _FLOOR·(1 + ΣB + ΣI) in exp-scores relative to O,
# so ΣB ≥ _FLOOR / (1 − _FLOOR) and its best B score is at least log of a fifth of that: a
# necessary condition, cheap to test on every row (the small margin covers float32 rounding).
_GATE = float(np.log(_FLOOR / (1 - _FLOOR) / 5)) - 1e-3
_CLIP = 60.0          # scores are clipped before exp: no overflow, and e^60 is certainty already
_EXP_CLIP = math.exp(_CLIP)
_CAPACITY = 1 << 15   # distinct tokens cached; the table starts over when full
_CHUNK = 4096         # tokens per table lookup, so one lookup never overflows the table
_NOTHING, _START, _END = 0, 1, 2   # the table rows of a text's edges
_RESERVED = 3
_HEAD, _TAIL = (_NOTHING, _START), (_END, _NOTHING)     # a text's row ids are padded with these
# Texts of up to this many pieces (about 4 KB of Korean) are gated and scored in plain Python. In a
# loop NumPy is faster from about 100 pieces, but between the other steps of a request each NumPy
# call costs several microseconds more (cold caches, dispatch): measured in the gateway, a 1 KB
# request's names took 37 µs this way against 74 µs through NumPy, and a short reply 22 against 50.
_SHORT = 512
_SLOTS = np.arange(5)


class NamesTagger:
    """Finds names with the exported weights; `find` gives (start, end, probability) per name.

    Scores are kept relative to ``O``: each feature's weights minus its ``O`` weight, so a piece's
    ``O`` score is always 0 and the table holds the ten name columns only."""

    def __init__(self, model: Path | str = MODEL_PATH) -> None:
        with np.load(str(model), allow_pickle=False) as z:
            attrs = [str(a) for a in z["attrs"]]
            weights = z["weights"].astype(np.float32)
            if tuple(str(x) for x in z["labels"]) != LABELS:
                raise ValueError(f"{model}: labels differ from {LABELS}")
            self._gaz = frozenset(str(x) for x in z["gazetteer"]) if "gazetteer" in z else frozenset()
            self._lex = Lexicon(*(unpack_words(z["lex_" + k]) if "lex_" + k in z else frozenset()
                                  for k in Lexicon._fields))
        weights = weights[:, 1:] - weights[:, :1]
        self._row = {a: i for i, a in enumerate(attrs)}
        self._w = weights
        # Per token, its weights by where it stands to the piece scored: two before it (slot 0), just
        # before (1), the piece itself (2), just after (3), two after (4); so a piece's window of
        # five rows reads slot k of its k-th row (see `scores`). Rows 0–2 stand for
        # the edges of a text: nothing (0), the start (1: as the previous piece it adds the
        # ``P=<s>`` weights) and the end (2: as the next, ``N=</s>``).
        self._table = np.zeros((_CAPACITY, 5, len(LABELS) - 1), np.float32)
        if _BOS in self._row:
            self._table[_START, 1] = weights[self._row[_BOS]]
        if _EOS in self._row:
            self._table[_END, 3] = weights[self._row[_EOS]]
        self._ids: dict[str, int] = {}
        self._rows = _RESERVED      # table rows in use
        # Rows of the table exponentiated, as Python tuples (slot, column), made for the rows a short
        # text's gate passes: scoring those few windows in plain Python costs a few microseconds,
        # where each NumPy call costs 5–10 between the other work of a request (cold caches).
        self._lists: dict[int, tuple[tuple[float, ...], ...]] = {}
        # Per row and slot, the largest of its five name-start weights: a piece's best name-start
        # score is at most the sum over its window, a bound plain Python adds up cheaply, and it
        # passes few pieces (6 of 145 on a 1 KB document, 7 % of KLUE's; 4 and 6 % start a name).
        self._bound = [[0.0] * _CAPACITY for _ in range(5)]
        for edge in (_START, _END):
            for slot in range(5):
                self._bound[slot][edge] = float(self._table[edge, slot, :_NB].max())

    def _id(self, tok: str) -> int:
        """The table row of a token, computed on first sight. A digit run's features are its
        length and the space before it, so every number shares the row of its shape: new numbers
        (order ids, amounts, dates) are in nearly every request and cost a lookup, not a row."""
        piece = tok.lstrip()
        if piece.isdigit():
            shape = tok[:len(tok) - len(piece)] + "0" * min(len(piece), 5)
            if shape != tok:
                k = self._ids[tok] = self._ids[shape] if shape in self._ids else self._id(shape)
                return k
        k = self._ids[tok] = self._rows
        self._rows += 1
        own, prev, nxt, before, after = token_features(tok, self._gaz, self._lex)
        row, table = self._row, self._table
        for slot, part in enumerate((before, prev, own, nxt, after)):
            rows = [row[f] for f in part if f in row]
            table[k, slot] = self._w[rows].sum(0) if rows else 0.0
        for slot, best in enumerate(self._table[k, :, :_NB].max(1).tolist()):
            self._bound[slot][k] = best
        return k

    def _make_room(self, n: int) -> None:
        """Start the table over when `n` more tokens might not fit."""
        if self._rows + n > _CAPACITY or len(self._ids) + n > 4 * _CAPACITY:
            self._ids.clear()
            self._lists.clear()
            self._rows = _RESERVED

    def _row_ids(self, toks: list[str]) -> list[int]:
        """The table rows of `toks`, padded with the edge rows. One lookup each in C; the few
        pieces not seen before (a new number, a rare word) get their rows after it."""
        self._make_room(len(toks))
        ids = self._ids
        rows: list[int | None] = [*_HEAD, *map(ids.get, toks), *_TAIL]
        k = -1
        for _ in range(rows.count(None)):      # each new piece found by a scan in C (most texts have one)
            k = rows.index(None, k + 1)
            tok = toks[k - len(_HEAD)]
            rows[k] = ids[tok] if tok in ids else self._id(tok)
        return cast("list[int]", rows)

    def _window_exp(self, padded: list[int], i: int) -> list[float]:
        """exp of the exact scores of piece `i` (clipped), in plain Python: the product of its
        window's five exponentiated rows, as exp(a + b + …) = exp(a)·exp(b)·…"""
        lists = self._lists
        r = [lists[k] if k in lists else self._list(k) for k in padded[i:i + 5]]
        return [min(a * b * c * d * e, _EXP_CLIP)
                for a, b, c, d, e in zip(r[0][0], r[1][1], r[2][2], r[3][3], r[4][4], strict=True)]

    def _list(self, k: int) -> tuple[tuple[float, ...], ...]:
        """Row `k` exponentiated, as tuples: the collector stops tracking tuples of floats, so the
        rows kept cost a full collection nothing."""
        row = self._lists[k] = tuple(map(tuple, np.exp(np.minimum(self._table[k].astype(np.float64), _CLIP)).tolist()))
        return row

    def scores(self, toks: list[str]) -> np.ndarray:
        """Label scores relative to ``O`` (columns B1…BW, I1…IW), one row per token (at most
        `_CHUNK` tokens): one gather of the tokens' rows, padded with the edge rows, and the sum
        of five shifted views, a handful of NumPy calls whatever the text's length."""
        ids = self._ids
        n = len(toks)
        try:
            idx = np.fromiter(chain(_HEAD, map(ids.get, toks), _TAIL), np.intp, n + 4)
        except TypeError:           # a piece not seen before (its id is None)
            self._make_room(n)
            idx = np.fromiter(chain(_HEAD, (ids[t] if t in ids else self._id(t) for t in toks), _TAIL),
                              np.intp, n + 4)
        g = self._table.take(idx, 0)
        # Row i of the window view is rows i…i+4 of `g` at slots 0…4: one step down a row and one
        # slot on at once, so a single sum adds the five parts (no slices and four adds).
        s0, s1, s2 = g.strides
        return np.ndarray((n, 5, g.shape[2]), g.dtype, g, 0, (s0, s0 + s1, s2)).sum(1)

    def _scores(self, toks: list[str]) -> np.ndarray:
        """`scores` of a text of any length, in chunks that see two tokens past each edge."""
        if len(toks) <= _CHUNK:
            return self.scores(toks)
        parts = []
        for s in range(0, len(toks), _CHUNK):
            lo = max(0, s - 2)
            e = self.scores(toks[lo:s + _CHUNK + 2])
            parts.append(e[s - lo:s - lo + min(_CHUNK, len(toks) - s)])
        return np.concatenate(parts)

    def find(self, text: str) -> list[tuple[int, int, float]]:
        """Names in `text` with the probability that a name starts where it does.

        Only the few pieces where a name can start (a few percent of ordinary text) are scored
        exactly and walked. Most texts (a message, a field, a reply: up to `_SHORT` pieces) find
        them by the per-slot bound and score them in plain Python, with no NumPy call at all;
        long ones score every piece in NumPy and gate on the exact scores."""
        toks = TOKEN.findall(text)
        n = len(toks)
        if not n:
            return []
        if n <= _SHORT:
            padded = self._row_ids(toks)
            b0, b1, b2, b3, b4 = self._bound
            windows = zip(padded, padded[1:], padded[2:], padded[3:], padded[4:], strict=False)
            starts = [i for i, (q, p, o, x, r) in enumerate(windows) if b0[q] + b1[p] + b2[o] + b3[x] + b4[r] > _GATE]
            if not starts:
                return []
            # the piece after a start is scored only when the walk asks (the name goes on into
            # it): most pieces the bound lets through start no name (a capitalised word, a rare one)
            ex = {i: self._window_exp(padded, i) for i in starts}
            return _walk(toks, starts, ex, lambda j: self._window_exp(padded, j))
        e = self._scores(toks)
        passed = np.flatnonzero(e[:, :_NB] > _GATE)     # (piece, column) pairs, flattened
        if not len(passed):
            return []
        starts = sorted({k // _NB for k in passed.tolist()})
        rows = sorted({*starts, *(i + 1 for i in starts if i + 1 < n)})
        scored = e[rows]

        def more(j: int) -> list[float]:
            return np.exp(np.minimum(e[j], _CLIP)).tolist()

        # The rows walked: each start and the piece after it (a name goes on there or ends),
        # exponentiated in one call; a name longer than two pieces fetches the rest with `more`.
        ex = dict(zip(rows, np.exp(np.minimum(scored, _CLIP)).tolist(), strict=True))
        return _walk(toks, starts, ex, more)


def _walk(toks: list[str], starts: list[int], ex: dict[int, list[float]],
          more: Callable[[int], list[float]]) -> list[tuple[int, int, float]]:
    """Names from the exponentiated scores `ex` of the candidate starts and the pieces after them."""
    n = len(toks)
    ends: list[int] = []
    out: list[tuple[int, int, float]] = []
    upto = -1
    for i in starts:
        if i <= upto:
            continue
        x = ex[i]
        p = sum(x[:_NB]) / (1.0 + sum(x))
        if p < _FLOOR:
            continue
        if not ends:
            ends = list(accumulate(map(len, toks)))
        k = x.index(max(x[:_NB]))          # B1…B4 (0–3) or BW (4)
        a = ends[i] - len(toks[i].lstrip())
        b = ends[i] if k == _W else min(ends[i], a + k + 1)
        j = i
        while k == _W and j + 1 < n:        # the name goes on into the next piece
            y = ex[j + 1] if j + 1 in ex else more(j + 1)
            q = sum(y[_NB:]) / (1.0 + sum(y))
            if q < 0.5:
                break
            k = y.index(max(y[_NB:]), _NB) - _NB   # I1…I4 (0–3) or IW (4)
            j += 1
            b = ends[j] if k == _W else min(ends[j], ends[j] - len(toks[j].lstrip()) + k + 1)
            p = min(p, q)
        upto = j
        out.append((a, b, p))
    return out


@lru_cache(maxsize=1)
def shipped() -> NamesTagger | None:
    """The packaged tagger, or None when its model file is missing or unreadable."""
    try:
        return NamesTagger()
    except (OSError, ValueError, KeyError):
        return None

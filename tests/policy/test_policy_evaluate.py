"""The gateway's Evaluator with the real scanner: fail closed, every request part counts, explain agrees."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from nuri.catalog import Catalog
from nuri.config import NuriConfig
from nuri.errors import InternalError, ModelNotFound, PermissionDenied
from nuri.gateway.evaluator import Evaluator
from nuri.gateway.request import parse_request
from nuri.policy.engine import PolicyEngine
from nuri.policy.explain import explain_view
from nuri.policy.null import NullPolicy
from nuri.principal import Principal
from nuri.privacy.scanner import Scanner
from nuri.routing.health import HealthBook
from nuri.routing.router import Router

RRN = "900101-1234568"
CONFIG = {
    "deployments": [
        {"id": "kr-local", "provider": "llamacpp", "jurisdiction": "KR", "hosting": "on_prem"},
        {"id": "us-api", "provider": "openai_compatible", "base_url": "http://127.0.0.1:9", "jurisdiction": "US",
         "hosting": "foreign_cloud"},
    ],
    "aliases": {"default": ["us-api", "kr-local"], "foreign": ["us-api"]},
    "policy": {"packs": ["kr-pipa", "ai-basic-act"]},
}


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def parts(config: NuriConfig):
    engine = PolicyEngine.load(config.policy, config.deployments)
    return engine, Router(config.routing, HealthBook(config.routing))


def evaluate(body, scanner, requested="default", config_dict=CONFIG, engine=None):
    config = NuriConfig.model_validate(config_dict)
    default_engine, router = parts(config)
    evaluator = Evaluator(config, scanner, engine or default_engine, router)
    req = parse_request({**body, "model": requested}, "chat")
    return evaluator.evaluate(req, Principal(), Catalog(config.deployments, config.aliases).resolve(requested))


def run(body, scanner, requested="default", config_dict=CONFIG, engine=None):
    """(classification, decision, steps) as the live handler gets them: no route raises."""
    result = evaluate(body, scanner, requested, config_dict, engine)
    return result.classification, result.decision, result.raise_for_route()


def chat(*messages):
    return {"model": "default", "messages": list(messages)}


@pytest.mark.parametrize(
    "body",
    [
        chat({"role": "user", "content": f"주민등록번호 {RRN} 확인해 주세요"}),
        chat({"role": "system", "content": f"고객 주민번호: {RRN}"}, {"role": "user", "content": "요약해줘"}),
        chat({"role": "user", "content": "조회"},
             {"role": "assistant", "content": None, "tool_calls": [
                 {"id": "c1", "type": "function",
                  "function": {"name": "lookup", "arguments": json.dumps({"rrn": RRN, "note": "주민등록번호"})}}]}),
        chat({"role": "user", "content": "조회"},
             {"role": "tool", "tool_call_id": "c1", "content": f"주민등록번호: {RRN}, 상태: 정상"}),
        chat({"role": "user", "content": [{"type": "text", "text": f"주민등록번호 {RRN}"}]}),
    ],
    ids=["user", "system", "tool-call-arguments", "tool-result", "multi-part"],
)
def test_rrn_anywhere_in_the_request_routes_only_domestic(scanner, body):
    classification, decision, steps = run(body, scanner)
    assert "KR_RRN" in classification.entity_types
    assert [s.deployment.id for s in steps] == ["kr-local"]
    with pytest.raises(PermissionDenied, match="pipa-unique-id-domestic"):
        run(body, scanner, requested="foreign")


def test_name_and_phone_go_abroad_masked(scanner):
    body = chat({"role": "user", "content": "홍길동 고객님 연락처는 010-2345-6789 입니다. 안내 문자를 써 주세요."})
    _, decision, steps = run(body, scanner)
    assert steps[0].deployment.id == "us-api" and {"PHONE", "PERSON"} <= steps[0].mask_types
    assert steps[1].deployment.id == "kr-local" and not steps[1].mask_types
    assert decision.label


class _BrokenScanner:
    settings = Scanner().settings

    def analyse(self, text):
        raise RuntimeError("detector crashed")

    scan = analyse


def test_classification_failure_fails_closed():
    with pytest.raises(InternalError) as info:
        run(chat({"role": "user", "content": "hi"}), _BrokenScanner())
    assert info.value.status == 500 and "not forwarded" in info.value.message
    assert info.value.code == "classification_failed"


def test_policy_failure_fails_closed(scanner):
    config = NuriConfig.model_validate(CONFIG)
    engine, _router = parts(config)

    def explode(*args, **kwargs):
        raise KeyError("bug")

    engine.decide = explode
    with pytest.raises(InternalError, match="policy evaluation failed"):
        run(chat({"role": "user", "content": "hi"}), scanner, engine=engine)


def test_policy_switched_off_by_config_is_the_null_engine_and_allows():
    config = NuriConfig.model_validate({**CONFIG, "policy": {"enabled": False}})
    evaluator = Evaluator.from_config(config, Router(config.routing, HealthBook(config.routing)))
    assert isinstance(evaluator.engine, NullPolicy) and evaluator.scanner is None
    req = parse_request(chat({"role": "user", "content": f"주민등록번호 {RRN}"}), "chat")
    result = evaluator.evaluate(req, Principal(), Catalog(config.deployments, config.aliases).resolve("default"))
    assert result.decision.action == "allow" and result.steps[0].deployment.id == "us-api"
    assert result.classification.entities == []        # nothing is scanned with policy off


def test_unknown_model_is_404(scanner):
    with pytest.raises(ModelNotFound):
        run(chat({"role": "user", "content": "hi"}), scanner, requested="nope")


def test_explain_view_matches_the_live_decision_and_holds_no_values(scanner):
    body = chat({"role": "user", "content": f"홍길동님 010-2345-6789, 주민등록번호 {RRN}"})
    config = NuriConfig.model_validate(CONFIG)
    result = evaluate(body, scanner)
    view = explain_view(result.classification, result.decision, result.steps, config.deployments)
    _, live, steps = run(body, scanner)
    assert [r["deployment"] for r in view["route"]] == [s.deployment.id for s in steps]
    assert [m["id"] for m in view["matched"]] == live.rule_ids
    rows = {r["id"]: r for r in view["deployments"]}
    assert rows["us-api"]["eligible"] is False and rows["us-api"]["excluded_by"] == "pipa-unique-id-domestic"
    assert view["classification"]["entities"]["KR_RRN"] == 1
    text = json.dumps(view, ensure_ascii=False)
    assert RRN not in text and "010-2345-6789" not in text and "홍길동" not in text


def test_explain_cli_json_agrees_with_the_evaluator(tmp_path, scanner):
    import typer
    import yaml

    from nuri.gateway.explain_cli import register

    app = typer.Typer()
    register(app)

    @app.command()
    def _noop() -> None:  # a second command keeps typer in multi-command mode
        pass

    path = tmp_path / "nuri.yaml"
    path.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    text = f"주민등록번호 {RRN} 조회"
    result = CliRunner().invoke(app, ["explain", text, "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    view = json.loads(result.output)
    _, decision, steps = run(chat({"role": "user", "content": text}), scanner)
    assert [r["deployment"] for r in view["route"]] == [s.deployment.id for s in steps]
    assert [m["id"] for m in view["matched"]] == decision.rule_ids
    human = CliRunner().invoke(app, ["explain", text, "--config", str(path)])
    assert human.exit_code == 0 and "pipa-unique-id-domestic" in human.output


def test_explain_cli_takes_a_whole_request_and_names_unscanned_content(tmp_path):
    import typer
    import yaml

    from nuri.gateway.explain_cli import register

    app = typer.Typer()
    register(app)

    @app.command()
    def _noop() -> None:
        pass

    config = tmp_path / "nuri.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    body = {"model": "foreign", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "이 사진을 설명해 주세요"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}],
        "tools": [{"type": "function", "function": {"name": "f", "description": f"주민등록번호 {RRN}"}}]}
    request = tmp_path / "body.json"
    request.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    result = CliRunner().invoke(app, ["explain", "--request", str(request), "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    view = json.loads(result.output)
    assert view["classification"]["unscanned_content"] == ["image/png"]
    assert view["classification"]["entities"] == {"KR_RRN": 1}
    assert view["action"] == "block"
    assert {"pipa-unscanned-content-domestic", "pipa-unique-id-domestic"} <= {m["id"] for m in view["matched"]}
    human = CliRunner().invoke(app, ["explain", "--request", str(request), "--config", str(config)])
    assert human.exit_code == 0 and "unscanned content" in human.output and "image/png" in human.output

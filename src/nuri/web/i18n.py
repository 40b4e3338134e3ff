"""Korean and English console text, chosen from a cookie (the language switch) or Accept-Language."""

from __future__ import annotations

from collections.abc import Callable

LANGS = ("ko", "en")
COOKIE = "nuri_lang"

TEXT: dict[str, tuple[str, str]] = {   # key: (English, Korean)
    "title": ("Nuri operations console", "누리 운영 콘솔"),
    "login": ("Sign in", "로그인"),
    "logout": ("Sign out", "로그아웃"),
    "credential": ("Admin key or an admin team's API key", "관리자 키 또는 관리자 팀의 API 키"),
    "login_help": ("The key is kept on the server for this session only.",
                   "키는 이 세션 동안 서버에만 보관됩니다."),
    "login_failed": ("That key does not open the console.", "이 키로는 콘솔에 들어갈 수 없습니다."),
    "session_expired": ("Your session has ended. Sign in again.", "세션이 만료되었습니다. 다시 로그인하세요."),
    "csrf_failed": ("The form was stale or forged; nothing was changed.",
                    "양식이 만료되었거나 위조되어 아무것도 바뀌지 않았습니다."),
    "language": ("Language", "언어"),
    "skip": ("Skip to content", "본문으로 건너뛰기"),
    "nav": ("Sections", "메뉴"),
    "overview": ("Overview", "개요"),
    "spend": ("Spend", "비용"),
    "deployments": ("Deployments", "배포"),
    "audit": ("Audit", "감사"),
    "policy": ("Policy", "정책"),
    "keys": ("Teams and keys", "팀과 키"),
    "evals": ("Evals", "평가"),
    "plan": ("Workload plan", "워크로드 계획"),
    "signed_in_as": ("Signed in as", "로그인:"),
    "last_minutes": ("last {n} minutes", "최근 {n}분"),
    "requests": ("Requests", "요청"),
    "rpm": ("Requests per minute", "분당 요청"),
    "in_country": ("In-country", "국내"),
    "abroad": ("Abroad", "국외"),
    "in_country_share": ("Share in-country", "국내 처리 비율"),
    "blocked": ("Blocked", "차단"),
    "pseudonymized": ("Pseudonymised", "가명 처리"),
    "top_rules": ("Top rules matched", "가장 많이 적용된 규칙"),
    "rule": ("Rule", "규칙"),
    "live": ("Updates every 5 seconds.", "5초마다 갱신됩니다."),
    "per_minute_chart": ("Requests per minute", "분당 요청 수"),
    "team": ("Team", "팀"),
    "key": ("Key", "키"),
    "deployment": ("Deployment", "배포"),
    "budget": ("Budget", "예산"),
    "spent": ("Spent", "사용액"),
    "used": ("Used", "사용률"),
    "period": ("Budget period", "예산 기간"),
    "no_budget": ("no budget", "예산 없음"),
    "jurisdiction": ("Jurisdiction", "관할"),
    "circuit": ("Circuit", "회로 차단기"),
    "samples": ("Samples", "표본"),
    "action": ("Action", "조치"),
    "since": ("From", "시작"),
    "until": ("Until", "끝"),
    "filter": ("Filter", "필터"),
    "clear": ("Clear", "초기화"),
    "older": ("Older records", "이전 기록"),
    "newest": ("Newest", "최신"),
    "time": ("Time", "시간"),
    "outcome": ("Outcome", "결과"),
    "rules": ("Rules", "규칙"),
    "no_records": ("No records match.", "일치하는 기록이 없습니다."),
    "searched_to": ("Searched down to record #{seq}; more may be older.",
                    "기록 #{seq}까지 검색했습니다. 더 오래된 기록이 있을 수 있습니다."),
    "verify": ("Verify chain", "체인 검증"),
    "chain_ok": ("Chain intact: {n} records checked up to #{head}.", "체인 정상: #{head}까지 {n}건 확인."),
    "chain_bad": ("Chain broken at record #{seq}: {reason}", "기록 #{seq}에서 체인이 손상됨: {reason}"),
    "packs": ("Active packs", "적용 중인 정책 팩"),
    "citation": ("Legal basis", "법적 근거"),
    "disabled_rules": ("Switched-off rules", "해제된 규칙"),
    "explain": ("Explain playground", "설명 놀이터"),
    "explain_help": ("Paste a prompt: Nuri shows how it would classify, decide and route it, without calling any model.",
                     "프롬프트를 붙여 넣으면 모델을 호출하지 않고 분류, 결정, 경로를 보여 줍니다."),
    "prompt": ("Prompt", "프롬프트"),
    "model": ("Model", "모델"),
    "as_team": ("As team", "팀으로"),
    "run_explain": ("Explain", "설명하기"),
    "decision": ("Decision", "결정"),
    "route": ("Route", "경로"),
    "classification": ("Classification", "분류"),
    "entities": ("Entities found", "발견된 개체"),
    "none": ("none", "없음"),
    "teams": ("Teams", "팀"),
    "tags": ("Tags", "태그"),
    "roles": ("Roles", "역할"),
    "tier": ("Latency tier", "지연 등급"),
    "save": ("Save", "저장"),
    "create_key": ("Create a key", "키 만들기"),
    "key_name": ("Name", "이름"),
    "user": ("User", "사용자"),
    "expires": ("Expires (e.g. 90d)", "만료 (예: 90d)"),
    "rpm_limit": ("Requests per minute", "분당 요청 한도"),
    "tpm_limit": ("Tokens per minute", "분당 토큰 한도"),
    "create": ("Create", "만들기"),
    "revoke": ("Revoke", "폐기"),
    "status": ("Status", "상태"),
    "created": ("Created", "생성"),
    "new_key": ("New key, shown once. Copy it now:", "새 키입니다. 한 번만 표시되니 지금 복사하세요:"),
    "keys_list": ("Keys", "키 목록"),
    "team_settings": ("Team settings", "팀 설정"),
    "comma_separated": ("comma-separated", "쉼표로 구분"),
    "leaderboard": ("Leaderboard", "순위표"),
    "suite": ("Suite", "평가 세트"),
    "score": ("Score", "점수"),
    "ci": ("95% CI", "95% 신뢰구간"),
    "cost_per_correct": ("Cost per correct", "정답당 비용"),
    "quality_cost": ("Quality against cost", "품질 대비 비용"),
    "no_evals": ("No eval results yet: run `nuri eval run`.", "평가 결과가 없습니다: `nuri eval run`을 실행하세요."),
    "no_plan": ("No workload plan is loaded (workloads.routes).", "불러온 워크로드 계획이 없습니다 (workloads.routes)."),
    "workload": ("Workload", "워크로드"),
    "recommended": ("Recommended", "추천"),
    "candidates": ("Candidates in order", "후보 순서"),
    "why": ("Why", "이유"),
    "excluded": ("Excluded", "제외"),
    "error": ("Error", "오류"),
    "p50": ("p50 latency (ms)", "p50 지연 (ms)"),
    "p95": ("p95 latency (ms)", "p95 지연 (ms)"),
    "chart_empty": ("No requests in this window.", "이 기간에 요청이 없습니다."),
}


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The switch's choice if made, else the browser's first supported language, else Korean."""
    if cookie in LANGS:
        return cookie
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGS and q > 0:
            ranked.append((-q, i, primary))
    return min(ranked)[2] if ranked else "ko"


def translator(lang: str) -> Callable[..., str]:
    """t(key, **values): the text in `lang`, values filled in."""
    index = 1 if lang == "ko" else 0

    def t(key: str, **values: object) -> str:
        pair = TEXT.get(key)
        text = pair[index] if pair else key
        return text.format(**values) if values else text

    return t

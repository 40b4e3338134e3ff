"""Dense vectors through Nuri's own /v1/embeddings (the embedded model serves them), hybrid fusion,
and the refusal of an embedding model that could leave the country."""

from __future__ import annotations

import asyncio

import pytest

from nuri.config import NuriConfig
from nuri.rag.embedder import GatewayEmbedder, check_in_country
from nuri.rag.evaluate import compare, load_set
from nuri.rag.settings import EmbeddingSettings


def test_dense_and_hybrid_run_beside_the_lexical_methods(embedded_gateway) -> None:
    embedder = GatewayEmbedder(EmbeddingSettings(url=embedded_gateway.base_url, model="local-gemma"))
    result = asyncio.run(compare(load_set(), embedder))
    methods = result["methods"]
    assert set(methods) == {"kiwi-bm25", "whitespace-bm25", "dense", "hybrid"} and not result["skipped"]
    assert methods["dense"]["recall@10"] > 0.5                         # real vectors, not noise
    assert methods["hybrid"]["recall@5"] >= methods["dense"]["recall@5"]


@pytest.mark.parametrize("target", ["us", "mixed"])
def test_an_embedding_model_that_may_reach_abroad_is_refused(target: str) -> None:
    config = NuriConfig.model_validate({
        "deployments": [
            {"id": "kr", "provider": "openai_compatible", "base_url": "http://127.0.0.1:9/v1",
             "jurisdiction": "KR", "hosting": "on_prem"},
            {"id": "us", "provider": "openai_compatible", "base_url": "http://127.0.0.1:9/v1",
             "jurisdiction": "US", "hosting": "foreign_cloud"}],
        "aliases": {"mixed": ["kr", "us"]},
    })
    with pytest.raises(ValueError, match="embeddings must stay in KR"):
        check_in_country(EmbeddingSettings(url="http://127.0.0.1:9/v1", model=target), config)
    check_in_country(EmbeddingSettings(url="http://127.0.0.1:9/v1", model="kr"), config)

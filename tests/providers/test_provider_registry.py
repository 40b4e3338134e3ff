"""The catalog's provider names and the adapter registry name the same adapters, so a deployment
the catalog accepts always has an adapter, and one it refuses says which names exist."""

from __future__ import annotations

from importlib import import_module

import pytest
from pydantic import ValidationError

from nuri.catalog import PROVIDER_NAMES, Deployment
from nuri.providers import PROVIDERS
from nuri.providers.base import Provider


def test_every_catalog_name_has_an_adapter_and_no_more() -> None:
    assert sorted(PROVIDERS) == sorted(PROVIDER_NAMES)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_each_registered_adapter_is_a_provider(name: str) -> None:
    module_name, class_name = PROVIDERS[name].split(":")
    assert issubclass(getattr(import_module(module_name), class_name), Provider)


def test_an_unknown_provider_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValidationError) as info:
        Deployment(id="x", provider="bedrock", jurisdiction="US", hosting="foreign_cloud")
    assert "unknown provider 'bedrock'" in str(info.value)
    assert "llamacpp, openai_compatible" in str(info.value)

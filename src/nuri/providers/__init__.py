"""Provider adapters: one module per wire protocol.

`PROVIDERS` maps the `provider:` name in the catalog to the adapter class, imported lazily so
that a gateway without the embedded model never imports llama.cpp. Adding a provider is one new
module, one line here and its name in `nuri.catalog.PROVIDER_NAMES` (which the catalog checks
deployments against without importing the adapters).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nuri.catalog import Deployment
    from nuri.providers.base import Provider

PROVIDERS: dict[str, str] = {
    "llamacpp": "nuri.providers.llamacpp:LlamaCppProvider",
    "openai_compatible": "nuri.providers.openai_compatible:OpenAICompatibleProvider",
    "anthropic": "nuri.providers.anthropic:AnthropicProvider",
}


def create_provider(deployment: Deployment) -> Provider:
    module_name, class_name = PROVIDERS[deployment.provider].split(":")
    cls = getattr(import_module(module_name), class_name)
    return cls(deployment)

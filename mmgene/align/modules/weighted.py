"""A module saved as its config JSON plus its weights (safetensors), and loaded back the same way."""

from __future__ import annotations

from typing import Any

from sentence_transformers.base.modules import Module

from mmgene.align.modules.helpers import hub_options


class WeightedModule(Module):
    """Base of the modules with parameters: :meth:`Module.load` builds one from its config, then the weights load."""

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=safe_serialization)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs: Any) -> Any:
        module = super().load(model_name_or_path, subfolder=subfolder, **kwargs)
        return cls.load_torch_weights(model_name_or_path, subfolder=subfolder, model=module, **hub_options(kwargs))

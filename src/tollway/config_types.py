"""The field types every settings model shares (`tollway.config`, `tollway.routing.settings`,
`tollway.pipeline.attempt_settings`): frozen models that refuse unknown keys, and strict
numbers and flags that `${VAR}` text from the environment may still fill. In their own module
so that settings kept beside their feature need not import `tollway.config` (which imports
them)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Strict

from tollway.config_env import EnvStr


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def env_scalar(kind: type) -> Any:
    """Text from `${VAR}` may fill a strict number or flag field; literal text may not."""

    def parse(v: Any) -> Any:
        if not isinstance(v, EnvStr):
            return v
        text = v.strip()
        if kind is bool:
            low = text.lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError("the environment gave neither true nor false")
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"the environment gave no {'integer' if kind is int else 'number'}") from None

    return BeforeValidator(parse)


Int = Annotated[int, Strict(), env_scalar(int)]
Float = Annotated[float, Strict(), env_scalar(float)]
Bool = Annotated[bool, Strict(), env_scalar(bool)]

"""What a ``quantize`` stage with ``method: litert`` may ask LiteRT Quantizer for (no TensorFlow, no library).

Two ways to say it:

* ``recipe:`` one of LiteRT Quantizer's named recipes (:data:`RECIPES`), e.g. ``weight_only_wi4_afp32``;
* ``rules:`` a list of :class:`LiteRTRule`, applied in order (a later rule wins where two match),
  for mixed precision: ``{layers: dense, weights: 8}`` after ``{layers: ".*", weights: 4}``.

The names are kept here rather than read from the library, because importing it takes seconds and
validation must stay fast; ``tests/stages/test_litert_quantize.py`` checks them against the library.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

# LiteRT Quantizer's named recipes for single-model files (``litert_quantizer.recipe``), by family.
# The library's LiteRT-LM mappings (``gemma4_*``: one recipe per model of a language-model bundle) are left out.
WEIGHT_ONLY_RECIPES = ("weight_only_wi8_afp32", "weight_only_wi4_afp32")
DYNAMIC_RECIPES = (
    "dynamic_wi8_afp32", "dynamic_wi4_afp32", "dynamic_legacy_wi8_afp32",
    "dynamic_wi8c_afp32", "dynamic_wi4c_afp32", "dynamic_wi2c_afp32",
    "dynamic_wi8b32_afp32", "dynamic_wi4b32_afp32", "dynamic_wi2b32_afp32",
    "dynamic_wi8b64_afp32", "dynamic_wi4b64_afp32", "dynamic_wi2b64_afp32",
    "dynamic_wi8c_hr_afp32", "dynamic_wi4c_hr_afp32", "dynamic_wi2c_hr_afp32",
)
STATIC_RECIPES = ("static_wi8_ai8", "static_wi8_ai16")
RECIPES = WEIGHT_ONLY_RECIPES + DYNAMIC_RECIPES + STATIC_RECIPES
RecipeName = Literal[RECIPES]  # type: ignore[valid-type]

# Friendly names of the library's algorithm keys that work per layer on converted Keras models.
ALGORITHMS = {"min_max": "min_max_uniform_quantize", "mse": "MSE", "octav": "OCTAV"}
BLOCK_SIZES = (32, 64, 128, 256)


class BlockGranularity(BaseModel):
    """Block-wise quantization: one scale per ``block`` consecutive weights of a channel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    block: Literal[BLOCK_SIZES] = Field(description="Weights per block.")  # type: ignore[valid-type]


def _granularity_kind(value: Any) -> str:
    return "block" if isinstance(value, (dict, BlockGranularity)) else "name"


# NOTE: a mapping is validated as a block size only, so a wrong one gets one error, not one per choice.
Granularity = Annotated[Union[Annotated[Literal["channel", "tensor"], Tag("name")],
                              Annotated[BlockGranularity, Tag("block")]], Discriminator(_granularity_kind)]


class LiteRTRule(BaseModel):
    """How the layers a regular expression selects are quantized."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layers: str = Field(
        ".*", description="Regular expression searched in each op's output tensor names, which hold the Keras "
                          "layer's name (`small_cnn/conv2/Relu`): `conv2`, `dense`, `.*` for every layer.")
    weights: Literal[2, 4, 8, "float"] = Field(
        8, description="Bits of the weights (integer, symmetric); `float` keeps the selected layers in float.")
    activations: Literal["float", "dynamic", 8, 16] = Field(
        "float", description="`float`: weight-only (weights dequantized, float compute); `dynamic`: quantized "
                             "at run time; 8 or 16: integer activations calibrated on `data` (static).")
    granularity: Granularity = Field(
        "channel", description="One weight scale per output channel, per tensor, or per block: `{block: 32}`.")
    algorithm: Literal[tuple(ALGORITHMS)] = Field(  # type: ignore[valid-type]
        "min_max", description="How weight ranges are chosen: `min_max`, `mse` (least squared error), `octav`.")

    @field_validator("layers")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"'layers' is not a valid regular expression ({exc}): {value!r}") from None
        return value

    @model_validator(mode="after")
    def _float_alone(self):
        if self.weights == "float" and (self.activations != "float" or self.granularity != "channel"
                                        or self.algorithm != "min_max"):
            raise ValueError("'weights: float' keeps the layers in float: leave out activations, granularity "
                             "and algorithm")
        return self

    @property
    def is_static(self) -> bool:
        """Integer activations: calibration samples are needed."""
        return self.weights != "float" and isinstance(self.activations, int)

    def describe(self) -> str:
        """``weights int4 channel, activations float (min_max)`` style text for messages."""
        if self.weights == "float":
            return "float (not quantized)"
        granularity = (f"block {self.granularity.block}" if isinstance(self.granularity, BlockGranularity)
                       else self.granularity)
        activations = f"int{self.activations}" if isinstance(self.activations, int) else self.activations
        return f"weights int{self.weights} {granularity}, activations {activations} ({self.algorithm})"


class KeepFloat(BaseModel):
    """Keep the layers with the largest quantization error in float: a number of them, or until a bound holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layers: int | None = Field(None, ge=1, le=100_000, description="Keep this many layers in float.")
    max_accuracy_drop: float | None = Field(
        None, ge=0.0, le=1.0, description="Keep layers in float, worst first, until the accuracy on the "
                                          "validation split is at most this far below the float model's.")

    @model_validator(mode="after")
    def _one_bound(self):
        if (self.layers is None) == (self.max_accuracy_drop is None):
            raise ValueError("give exactly one of 'layers' or 'max_accuracy_drop'")
        return self


def recipe_is_static(name: str) -> bool:
    """Whether the named recipe quantizes activations (and so needs calibration samples)."""
    return name in STATIC_RECIPES

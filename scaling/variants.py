"""Architecture variants: named sets of model-config changes on a family.

A variant is a YAML file in ``<config dir>/variant/`` (``scaling/configs/variant/``,
or ``$SCALING_CONFIG_DIR/variant/`` for your own) holding the ``model`` keys it
changes (family, activation, norm, position, tie_embeddings, n_kv_heads, n_experts,
experts_top_k) and, for a depth/width variant, ``grid.aspect``. A run names one as
``model.variant=NAME``; :func:`apply_variant` merges it into the run's config
before the run id is taken, so the id hashes what the variant changes, and a
config without a variant (``model.variant: null``) keeps the id it always had
(:data:`scaling.runid.OMITTED_WHEN_NULL`). Every variant is built by a
``transformers`` class and counted exactly (:mod:`scaling.models`,
:mod:`scaling.accounting`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scaling.errors import ScalingError

#: The keys a variant may set: model fields of the shape, and the grid's depth/width band.
VARIANT_KEYS = {
    "model": ("family", "activation", "norm", "position", "tie_embeddings", "n_kv_heads", "n_experts", "experts_top_k"),
    "grid": ("aspect",),
}


def variant_dir() -> Path:
    from scaling.config import CONFIG_DIR

    return CONFIG_DIR / "variant"


def known_variants() -> list[str]:
    """The names of the variant files, sorted."""
    return sorted(p.stem for p in variant_dir().glob("*.yaml"))


def load_variant(name: str) -> dict[str, dict[str, Any]]:
    """The changes of variant ``name``, checked against :data:`VARIANT_KEYS`."""
    import yaml

    path = variant_dir() / f"{name}.yaml"
    if not str(name) or "/" in str(name) or not path.is_file():
        raise ScalingError(f"unknown variant {name!r} (model.variant); known: {', '.join(known_variants())}")
    try:
        changes = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ScalingError(f"variant file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(changes, dict):
        raise ScalingError(f"variant file {path} must hold a mapping of model / grid keys")
    for group, values in changes.items():
        allowed = VARIANT_KEYS.get(group)
        if allowed is None or not isinstance(values, dict | type(None)):
            raise ScalingError(f"variant file {path}: {group!r} is not a group a variant changes (model, grid)")
        unknown = sorted(set(values or {}) - set(allowed))
        if unknown:
            raise ScalingError(
                f"variant file {path}: {group}.{unknown[0]} cannot be set by a variant; allowed: {', '.join(allowed)}"
            )
    return {group: dict(values or {}) for group, values in changes.items()}


def apply_variant(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` with its ``model.variant`` merged in (unchanged when the variant is null)."""
    name = (cfg.get("model") or {}).get("variant")
    if name is None:
        return dict(cfg)
    out = dict(cfg)
    for group, values in load_variant(str(name)).items():
        if group == "model":
            for key, value in values.items():
                given = out["model"].get(key)
                if key not in ("family", "tie_embeddings") and given is not None and given != value:
                    raise ScalingError(
                        f"model.{key}={given} conflicts with variant {name!r}, which sets {value}; drop one of them"
                    )
        out[group] = {**out.get(group, {}), **values}
    return out

"""The typed schema of every ``scaling-train`` config group, and where the YAML lives.

One dataclass per config group (OLMo-core's habit: every field says what it is),
registered with Hydra's ConfigStore as a structured config. The YAML files hold
the values (``scaling/configs/``, shipped inside the package: one file per option
of a group); these classes hold
the keys and their types, so a misspelt key, in a preset or on the command line,
fails at composition with Hydra's own message instead of being silently ignored.

The composed config keeps exactly the keys the YAML has, because a run's id is a
hash of them (:mod:`scaling.runid`): a field here that no YAML sets would
change every run id. Numbers that users write both as ``20`` and ``2e9`` are
typed ``Any``: OmegaConf would turn an int into a float for a ``float`` field and
so change the id of a run whose config did not change.

Import this module (it is where :data:`CONFIG_DIR` lives) before composing the
configs: the import registers the schema that ``train.yaml`` and the data
presets name in their defaults lists.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from scaling.errors import ScalingError

T = TypeVar("T")

#: The Hydra config folder (``train.yaml`` and one folder per group): the package's own
#: ``scaling/configs/`` (package data, so a plain ``pip install .`` has it too), or a
#: folder of your own laid out the same way, named by ``SCALING_CONFIG_DIR``.
CONFIG_DIR = Path(os.environ.get("SCALING_CONFIG_DIR") or Path(__file__).resolve().parent / "configs")


@dataclass
class TrainConfig:
    """``train``: the budget, the batch, evaluation and the device of one run."""

    tokens: Any = MISSING  # budget in tokens; set exactly one of tokens, tokens_per_param, flops
    tokens_per_param: Any = MISSING  # budget as tokens per parameter (N counted as params_for_budget says)
    params_for_budget: str = MISSING  # which N tokens_per_param multiplies: non_embedding | with_head | total
    flops: Any = MISSING  # budget in FLOPs under flops_convention
    flops_convention: str = MISSING  # kaplan (6 N_non-embedding) | six_n (6 N_with-head) | exact (counted matmuls)
    batch_size: int | None = MISSING  # global sequences per optimizer step; null = the hparams law of N
    micro_batch_size: int | None = MISSING  # sequences per process and forward pass; null = the whole batch
    eval_points: int = MISSING  # log-spaced held-out evaluations (plus the end)
    eval_tokens: Any = MISSING  # validation tokens per evaluation (fixed windows, the same at every point)
    log_every: int = MISSING  # steps between train-loss logs
    device: str = MISSING  # auto | cpu | cuda
    precision: str = MISSING  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16
    compile: Any = MISSING  # torch.compile: auto (on for CUDA) or a bool
    threads: Any = MISSING  # CPU threads: auto (1 unless OMP_NUM_THREADS is set), a number, or torch
    interrupt_at_step: int | None = MISSING  # act as if SIGTERM arrived at this step (tests, demos)
    dry_run: bool = MISSING  # list the resolved run(s) (shape, N, D, C, lr, batch, warmup), train nothing


@dataclass
class ModelConfig:
    """``model``: the transformer's shape, given directly or as a target parameter count."""

    family: str = MISSING  # gpt2 | llama (scaling.models)
    d_model: int = MISSING  # residual width
    n_layers: int = MISSING  # transformer blocks
    n_heads: int = MISSING  # attention heads; must divide d_model
    d_ff: int | None = MISSING  # MLP width; null = the family's default
    context: int = MISSING  # sequence length in tokens
    vocab_size: int | None = MISSING  # null = the tokenizer's
    tie_embeddings: bool = MISSING  # share the input embedding with the output head
    target_params: Any = MISSING  # pick the shape for this parameter count (scaling.grid) instead
    target_count: str = MISSING  # which count target_params means: non_embedding | with_head | total
    variant: str | None = MISSING  # a named set of the changes below (scaling/configs/variant/); null = none
    activation: str | None = MISSING  # gpt2: gelu; llama: swiglu | geglu; null = the family's
    norm: str | None = MISSING  # layernorm | rmsnorm (llama only: layernorm builds StableLM); null = the family's
    position: str | None = MISSING  # learned | rope (gpt2 only: rope builds GPT-NeoX); null = the family's
    n_kv_heads: int | None = MISSING  # llama: grouped-query attention's key/value heads; null = n_heads
    n_experts: int | None = MISSING  # llama: a Mixtral mixture of this many experts per layer; null = dense
    experts_top_k: int | None = MISSING  # experts each token is routed to (<= n_experts); null = 2


@dataclass
class OptimConfig:
    """``optim``: AdamW, with weight decay on matrices only."""

    name: str = MISSING  # adamw
    lr: float | None = MISSING  # peak learning rate; null = the hparams law of N
    betas: list[float] = MISSING  # Adam's (beta1, beta2)
    eps: float = MISSING  # Adam's epsilon
    weight_decay: float = MISSING  # decoupled weight decay on tensors of two or more dimensions
    grad_clip: float = MISSING  # global gradient-norm clip; 0 = none
    fused: Any = MISSING  # fused AdamW kernel: auto (wherever torch has one) or a bool


@dataclass
class ScheduleConfig:
    """``schedule``: warmup, then cosine, constant or warmup-stable-decay (Hagele et al. 2024)."""

    name: str = MISSING  # cosine | constant | wsd
    warmup_tokens: Any = MISSING  # warmup length in tokens; null = the hparams law (about N tokens)
    max_warmup_frac: float = MISSING  # warmup cap, as a fraction of the shortest horizon
    min_lr_ratio: float = MISSING  # final learning rate / peak
    cooldown_frac: float = MISSING  # wsd: the (1 - sqrt) cooldown's share of a horizon
    branches: list[float] = MISSING  # wsd: budget fractions at which a cooldown branch writes an extra record


@dataclass
class LoggingConfig:
    """``logging``: the progress bar and Weights & Biases."""

    progress: bool = MISSING  # tqdm bar (only on a terminal)
    wandb: Any = MISSING  # true | false (or a W&B mode); WANDB_MODE wins; offline without credentials
    project: str = MISSING  # W&B project
    entity: str | None = MISSING  # W&B entity; null = the user's default
    group: str = MISSING  # W&B group, one per experiment (scaling collect --wandb --group)
    tags: list[str] = MISSING  # extra W&B tags (family and N=... are always added)
    dir: str | None = MISSING  # where wandb/ goes; null = $WANDB_DIR or the working directory


@dataclass
class HParamsConfig:
    """``hparams``: the laws that give lr, batch and warmup from N where they are null.

    Porian et al. 2024 / the OLMo 2 ladder (scaling.grid.hparams.HParamLaws, whose
    other constants keep their defaults).
    """

    count: str = MISSING  # which parameter count N means: non_embedding | with_head | total
    lr_ref: float = MISSING  # learning rate at lr_ref_params
    lr_ref_params: float = MISSING  # N at which lr = lr_ref
    lr_exponent: float = MISSING  # lr ~ N^lr_exponent
    lr_min: float = MISSING  # clamp of the extrapolated lr
    lr_max: float = MISSING
    warmup_tokens_per_param: float = MISSING  # warmup = this x N tokens, before schedule.max_warmup_frac caps it


@dataclass
class GridConfig:
    """``grid``: how a sweep picks each job's shape (scaling.grid)."""

    kind: str = MISSING  # none | isoflop (the shape for train.flops at N = N_prior(C) * ratio^offset)
    offset: Any = MISSING  # isoflop: this job's step from the prior optimum, in powers of ratio
    prior: Any = MISSING  # isoflop: tokens per parameter of the prior optimum, or a law name (hoffmann2022)
    ratio: float = MISSING  # isoflop: size ratio between neighbouring offsets (> 1)
    count: str | None = MISSING  # parameter count the shape matches; null = the one the convention multiplies
    aspect: list[float] | None = MISSING  # [lo, hi] band of d_model / n_layers; null = [32, 128]
    head_dim: int | None = MISSING  # null = 64 from d_model 256 up, else near 32
    tokens_per_param: Any = MISSING  # with schedule=wsd: every budget of a size comes from one run's branches
    n_layers: int | None = MISSING  # isoflop: fixed depth, so only the width moves with N (a width ladder)
    budgets: Any = MISSING  # isoflop + schedule=wsd: the sweep's train.flops values; one run per size, a branch each
    offsets: Any = MISSING  # isoflop + schedule=wsd: the sweep's grid.offset values


@dataclass
class PathsConfig:
    """``paths``: where results, checkpoints and caches go (not part of a run's id)."""

    results: str = MISSING  # records go to <results>/<experiment_name>/runs/
    checkpoints: str | None = MISSING  # null = <results>/<experiment_name>/ckpt
    cache: str | None = MISSING  # tokenizer and token caches; null = $SCALING_CACHE or ~/.cache/scaling


@dataclass
class CheckpointConfig:
    """``checkpoint``: how often a run saves itself (always on a stop signal and at the end)."""

    every_steps: int | None = MISSING  # null = about ten a run


@dataclass
class PySourceDataConfig:
    """``data=pysource``: the embedded corpus, this interpreter's own source, with a local BPE."""

    kind: str = MISSING  # pysource
    roots: list[str] = MISSING  # stdlib, site-packages, platlib or folders
    extra_roots: list[str] = MISSING  # more roots, appended
    max_bytes: Any = MISSING  # keep a deterministic prefix of the sorted files; null = all
    tokenizer: str = MISSING  # bpe (trained here, cached) or a Hugging Face tokenizer name or path
    vocab_size: int = MISSING  # the local BPE's vocabulary
    bpe_train_bytes: Any = MISSING  # bytes of corpus the BPE is trained on
    val_fraction: float = MISSING  # share of files held out for validation
    allow_repeat: bool = MISSING  # train past one epoch (recorded as epochs)
    unique_tokens: Any = MISSING  # train on U tokens of the training split (spread blocks), repeated; null = all


@dataclass
class HFDataConfig:
    """``data=hf`` and its presets: a Hugging Face dataset tokenized once into token shards.

    Also what ``scaling prepare`` reads (scaling.data.prepare): the settings of one preparation.
    """

    kind: str = MISSING  # hf
    name: str = MISSING  # corpus name recorded in run records
    path: str | None = MISSING  # hub dataset, local folder, or builder (parquet | json | text | csv)
    data_files: Any = MISSING  # file(s) or globs for a local builder
    config: str | None = MISSING  # the dataset's subset; null = its default
    split: str = MISSING  # source split; validation is carved out by document hash
    text_field: str = MISSING  # column holding each document's text
    revision: str | None = MISSING  # branch, tag or commit; pin it for reproducible corpora
    streaming: bool = MISSING  # stream from the hub instead of downloading the whole split first
    tokenizer: str = MISSING  # Hugging Face tokenizer name or local path
    val_fraction: float = MISSING  # documents held out by blake2b hash of their text
    max_documents: Any = MISSING  # cap on source documents read; null = all
    max_tokens: Any = MISSING  # cap on train tokens; null = all
    shard_tokens: Any = MISSING  # tokens per shard file
    num_proc: int | None = MISSING  # tokenizer processes; null = min(cores, 16)
    prepared_dir: str | None = MISSING  # null = <prepared_root>/<source>-<config>-<split>-<hash>
    prepared_root: str = MISSING  # where prepared corpora go
    hf_cache_dir: str | None = MISSING  # datasets cache; null = HF_DATASETS_CACHE or its default
    builder_kwargs: Any = MISSING  # extra builder options, e.g. {sample_by: document}; null = none (Any: OmegaConf
    # 2.3 fails to override a null Optional[Dict] with a dict, so the mapping is checked in scaling.data.settings)
    allow_repeat: bool = MISSING  # train past one epoch of the prepared tokens (recorded as epochs)
    unique_tokens: Any = MISSING  # train on U tokens of the training split (spread blocks), repeated; null = all


@dataclass
class ScalingConfig:
    """The whole ``scaling-train`` config: ``train.yaml``'s defaults list fills each group."""

    experiment_name: str = MISSING  # results/<experiment_name>/runs/; presets set it (+experiment=demo)
    seed: int = MISSING  # initialisation and data order
    train: TrainConfig = field(default_factory=TrainConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: Any = MISSING  # PySourceDataConfig or HFDataConfig, chosen by the data preset
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    hparams: HParamsConfig = field(default_factory=HParamsConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)


def from_node(schema: type[T], node: Mapping[str, Any]) -> T:
    """A config group's node (a composed DictConfig or a plain dict) as its dataclass, checked.

    ``schema(**node)`` would quietly keep ``"???"`` for a key the node lacks; merging
    into the structured schema names a missing or unknown key, or a wrong type, in
    one :class:`~scaling.errors.ScalingError` line instead.
    """
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        raise ScalingError(f"{schema.__name__}: {str(err).splitlines()[0]}") from None


#: Fields typed ``Any`` above (so that ``20`` and ``2e9`` keep their YAML type, and a run its id) that
#: hold one number or null. The schema cannot check them, so :func:`check_numbers` does, before a run
#: loads any data: ``train.tokens=abc`` is one line at once, not a traceback after the corpus loads.
NUMBER_FIELDS = (
    "train.tokens",
    "train.tokens_per_param",
    "train.flops",
    "train.eval_tokens",
    "model.target_params",
    "schedule.warmup_tokens",
    "grid.offset",
    "data.max_bytes",
    "data.bpe_train_bytes",
    "data.max_documents",
    "data.max_tokens",
    "data.shard_tokens",
)
#: ``Any`` fields that hold a list of numbers or null.
NUMBER_LIST_FIELDS = ("grid.tokens_per_param",)


def _is_number(value: Any) -> bool:
    """A number as the code reads it: int or float (not bool), or a string float() parses ("2e9")."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def check_numbers(cfg: Mapping[str, Any]) -> None:
    """Raise one ScalingError naming the first numeric field (NUMBER_FIELDS) that holds no number."""
    for dotted in NUMBER_FIELDS + NUMBER_LIST_FIELDS:
        section, _, key = dotted.partition(".")
        group = cfg.get(section)
        if not isinstance(group, Mapping) or group.get(key) is None:
            continue  # a data preset without this key, or null
        value = group[key]
        if dotted in NUMBER_LIST_FIELDS:
            if not isinstance(value, list | tuple) or not all(_is_number(v) for v in value):
                raise ScalingError(f"{dotted} must be a list of numbers or null, got {value!r}")
        elif not _is_number(value):
            raise ScalingError(f"{dotted} must be a number or null, got {value!r}")


def register_schema(store: ConfigStore | None = None) -> None:
    """Put the schema where the YAML's defaults lists name it: ``schema/train``, ``schema/data/<kind>``."""
    store = store or ConfigStore.instance()
    store.store(group="schema", name="train", node=ScalingConfig)
    store.store(group="schema/data", name="pysource", node=PySourceDataConfig)
    store.store(group="schema/data", name="hf", node=HFDataConfig)


register_schema()

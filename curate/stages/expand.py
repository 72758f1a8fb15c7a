"""Expand records into prompts with template families (FLAN style): ``expand_v1``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import Field

from curate.errors import CurateError, StageError
from curate.records import REJECT_SCHEMA
from curate.stages.base import GlobalStage, StageParams, StageResult, make_rejects, stage_stats
from curate.templates import DEFAULT_TEMPLATE_DIR, Expander, Family, load_families
from curate.templates.render import TokenCounter
from curate.templates.render import count_tokens as approximate_tokens


def template_directories(params: ExpandTemplates.Params) -> list[Path]:
    directories = [DEFAULT_TEMPLATE_DIR] if params.builtin else []
    directories += [Path(d) for d in params.template_dirs]
    if not directories:
        raise StageError("builtin is false and no template_dirs are given: no families to use")
    return directories


class ExpandTemplates(GlobalStage):
    """Render each record with ``per_record`` templates of the families that apply to it.

    Templates are balanced per task (round-robin over a seeded shuffle, within ±1) and every
    output row carries ``template_id`` (``<family>/<template>``), ``template_type``, ``inverted``,
    ``exemplar_ids``, ``parent_id`` (the original record id) and ``messages`` (user, assistant).
    Records no template is for (chats, already-templated FLAN rows, no matching family) pass
    through unchanged, or are rejected with ``no_template`` when ``unmatched: drop``.
    A (record, template) pair that fails to render is rejected (``template_error``,
    ``template_empty``, ``answer_not_in_choices``, ``template_budget`` when it exceeds a template
    budget: size, time, steps, depth, see :mod:`curate.templates.budget`) with the template id set.

    A global stage although rows multiply like a map: it needs a pass over the stream first (the
    round-robin continues across batches and few-shot exemplars are drawn from each task's whole
    stream).
    """

    name: ClassVar[str] = "expand_v1"
    multiplies_rows: ClassVar[bool] = True

    class Params(StageParams):
        per_record: int = Field(1, ge=1, le=64, description="Templates (output rows) per record.")
        families: list[str] | None = Field(
            None, description="Family ids to use; default: every family that applies."
        )
        template_dirs: list[str] = Field(
            default_factory=list, description="More directories of family YAML files."
        )
        builtin: bool = Field(True, description="Include the project's templates/ families.")
        seed: int = Field(
            0,
            description="Seed for template shuffles and few-shot draws; a recipe sets the recipe seed unless given.",
        )
        parse_options: bool = Field(
            True, description="Find 'Options:' blocks in the text and use them as options."
        )
        shots: int | None = Field(
            None, ge=1, le=32, description="Override k of few-shot templates."
        )
        max_chars: int | None = Field(
            None, ge=1, description="Override the few-shot character budget."
        )
        max_tokens: int | None = Field(
            None, ge=1, description="Override the few-shot token budget."
        )
        tokenizer: str | None = Field(
            None,
            description="Count the few-shot token budget with this tokenizer (as length's "
            "tokenizer: cl100k_base or a tokenizer.json path); default: the recipe's length "
            "stage's tokenizer, else an approximation (words and punctuation).",
        )
        pool_size: int = Field(
            32, ge=1, description="Exemplar candidates kept per task and template."
        )
        unmatched: Literal["keep", "drop"] = Field(
            "keep", description="Records no family applies to."
        )

    params: Params

    def __init__(self, params: StageParams | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._families: list[Family] | None = None
        self._expander: Expander | None = None

    def prepare(self) -> None:
        # Loading validates every template (file and line in the error) before any run; the
        # families are cached per process, so a worker's copy reloads them cheaply.
        if self._expander is not None:
            return
        try:
            families = load_families(template_directories(self.params), self.params.families)
        except StageError as error:
            raise StageError(f"expand: {error}") from None
        except CurateError as error:
            raise StageError(f"expand.template_dirs: {error}") from None
        self._families = families
        self._expander = self._make_expander(families)

    @property
    def families(self) -> list[Family]:
        self.prepare()
        assert self._families is not None
        return self._families

    @property
    def expander(self) -> Expander:
        self.prepare()
        assert self._expander is not None
        return self._expander

    def __getstate__(self) -> dict[str, Any]:
        # Compiled jinja2 templates do not pickle: a copy reloads its families (cached) instead,
        # and takes what the fit learned (exemplar pools, where each batch's round-robin starts).
        state: dict[str, Any] = {"params": self.params.model_dump()}
        if self._expander is not None:
            state["fitted"] = self._expander.fitted_state()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["params"])  # type: ignore[misc]
        if "fitted" in state:
            self.expander.restore(state["fitted"])

    def _make_expander(self, families: list[Family]) -> Expander:
        p = self.params
        return Expander(
            families,
            seed=p.seed,
            per_record=p.per_record,
            parse_options=p.parse_options,
            shots=p.shots,
            max_chars=p.max_chars,
            max_tokens=p.max_tokens,
            pool_size=p.pool_size,
            drop_unmatched=p.unmatched == "drop",
            count_tokens=self._token_counter(),
        )

    def _token_counter(self) -> TokenCounter:
        if self.params.tokenizer is None:
            return approximate_tokens
        from curate.lib.tokens import load_tokenizer

        encode = load_tokenizer(self.params.tokenizer).encode
        return lambda text: len(encode(text))

    def fit(self, batches: Iterable[pa.Table]) -> None:
        self.expander.fit(batches)

    def apply(self, table: pa.Table) -> StageResult:
        result = self.expander.expand(table)
        if result.failed.num_rows:
            rejected = make_rejects(
                result.failed,
                self.name,
                pa.array(result.reasons, pa.string()),
                pa.array(result.details, pa.string()),
            )
        else:
            rejected = REJECT_SCHEMA.empty_table()
        return StageResult(
            result.table, rejected, stage_stats(table.num_rows, result.table.num_rows, rejected)
        )

    def applies_per_shard(self) -> bool:
        return True

    def apply_shard(self, table: pa.Table, batch: int) -> StageResult:
        self.expander.seek(batch)
        return self.apply(table)

    def applied_info(self) -> Any:
        return self.expander.stats

    def absorb_applied(self, infos: list[Any]) -> None:
        for stats in infos:
            self.expander.stats.merge(stats)

    def manifest_info(self) -> dict[str, Any]:
        """Templates used, per type, balance, few-shot and pass-through counts (for manifest.json)."""
        return {"families": [f.id for f in self.families], **self.expander.stats.summary()}

"""Create, resume or load a study together with the :class:`~thunes.optimize.spec.StudySpec` it stores.

A study resumed with different settings is refused (with the differences named), except a change of
where the same candles are read from (same window and fingerprint).
"""

from __future__ import annotations

import json
from dataclasses import replace

import optuna

from thunes.core.errors import ConfigError
from thunes.core.redact import redact_url
from thunes.optimize.spec import SPEC_ATTR, StudySpec, make_sampler, reseed
from thunes.optimize.storage import StorageOptions, open_storage

__all__ = ["create_or_load", "load_study"]

def create_or_load(spec: StudySpec, storage_url: str, study_name: str, storage_options: StorageOptions | None
                    ) -> optuna.Study:
    storage = open_storage(storage_url, options=storage_options)
    study = optuna.create_study(
        storage=storage, study_name=study_name, sampler=make_sampler(spec), load_if_exists=True,
        directions=spec.directions,
    )
    existing = study.user_attrs.get(SPEC_ATTR)
    if existing is None:
        study.set_user_attr(SPEC_ATTR, spec.to_json())
    else:
        old = StudySpec.from_json(existing)
        # The same candles (same window and fingerprint) read from another place, e.g. the samples first
        # and the store after `thunes data import`, give the same objective: the study goes on.
        if old != spec and old != replace(spec, data_source=old.data_source):
            raise ConfigError(
                f"study {study_name!r} in {redact_url(storage_url)} was created with different settings "
                f"({_spec_diff(old, spec)}); choose another --study name or delete that study"
            )
    return study


def _spec_diff(old: StudySpec, new: StudySpec) -> str:
    a, b = json.loads(old.to_json()), json.loads(new.to_json())
    changed = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return "; ".join(f"{k}: {a.get(k)!r} → {b.get(k)!r}" for k in changed)


def load_study(storage_url: str, study_name: str, *, storage_options: StorageOptions | None = None
               ) -> tuple[optuna.Study, StudySpec]:
    """An existing study and its spec (for workers, reports and the decay check)."""
    storage = open_storage(storage_url, options=storage_options)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if study_name not in names:
        listed = ", ".join(names) or "none"
        raise ConfigError(f"no study {study_name!r} in {redact_url(storage_url)} (studies: {listed})")
    study = optuna.load_study(study_name=study_name, storage=storage)
    raw = study.user_attrs.get(SPEC_ATTR)
    if raw is None:
        raise ConfigError(f"study {study_name!r} was not created by thunes (it has no {SPEC_ATTR} attribute)")
    spec = StudySpec.from_json(raw)
    reseed(study, spec)
    return study, spec

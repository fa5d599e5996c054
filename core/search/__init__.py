"""``corolla search``: PaddleClas's staged hyper-parameter search (SHAS) on Optuna.

Modules, one job each: :mod:`~corolla.search.spec` (the typed search),
:mod:`~corolla.search.reading` (the search file, PaddleClas's keys and corolla's),
:mod:`~corolla.search.configs` (each trial's training config),
:mod:`~corolla.search.study` (Optuna: storage, stage studies, claiming trials),
:mod:`~corolla.search.trial` (one ``corolla train`` process and its score),
:mod:`~corolla.search.results` (best values, table, CSV, plot),
:mod:`~corolla.search.progress` and :mod:`~corolla.search.runner` (the stages in order).
Optuna is imported only when a search runs.
"""
from corolla.search.reading import Overrides, read_search, split_overrides
from corolla.search.runner import SearchResult, run_search

__all__ = ["Overrides", "SearchResult", "read_search", "run_search", "split_overrides"]

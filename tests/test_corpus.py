"""Every case of the hostile-input corpus (tests/corpus/) through the command line."""

from __future__ import annotations

import pytest
from corpus import Case, Kit, all_cases, check, train_model

CASES = all_cases()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_model(tmp_path_factory.mktemp("corpus-model"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case, trained, tmp_path):
    model, table = trained
    check(case, Kit(tmp_path, model, table))


def test_the_corpus_is_large():
    assert len(CASES) >= 200, len(CASES)

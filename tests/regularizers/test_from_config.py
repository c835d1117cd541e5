"""One regularizer builder for the command line and the experiments: the same regularizers from the same words."""

from __future__ import annotations

import pytest

from geoadapt import Spec
from geoadapt.errors import ConfigError
from geoadapt.experiments import regularizers_for
from geoadapt.groups import O3, SO3
from geoadapt.models import build
from geoadapt.regularizers import (
    ConstrainedEquivarianceRegularizer,
    EquivarianceRegularizer,
    MixedEquivarianceRegularizer,
)
from geoadapt.regularizers.from_config import regularizers_from_config

SPEC = Spec(fields={"pos": "1o", "x": "9x0e"}, output="0e", positions=("pos",))


def shape(regularizers: list) -> list:
    """What distinguishes two regularizer lists: kinds, names, groups and options, term by term."""

    def term(t: EquivarianceRegularizer) -> tuple:
        return (t.name, repr(t.group), t.n_samples, t.batch_fraction, t.balance_ratio, t.auto_weight)

    out = []
    for r in regularizers:
        if isinstance(r, MixedEquivarianceRegularizer):
            out.append(("mixed", r.name, [term(t) for t in r.components()]))
        elif isinstance(r, ConstrainedEquivarianceRegularizer):
            out.append(("constrained", r.name, r.epsilon, r.margin, term(r.term)))
        else:
            out.append(("plain", term(r)))
    return out


@pytest.mark.parametrize("kind", ["regularizer", "constrained", "mixed"])
def test_the_experiments_methods_are_configurations_of_the_builder(kind):
    model = build("naive_gnn", hidden=16)
    words = {
        "regularizer": {"regularizers": [{"group": "so3", "batch_fraction": 1.0}]},
        "constrained": {"regularizers": [{"group": "so3", "batch_fraction": 1.0}], "constrained": {}},
        "mixed": {"regularizers": [{"group": g, "batch_fraction": 1.0} for g in ("so3", "o3")], "mixed": True},
    }[kind]
    built = regularizers_for(kind, model, batch_fraction=1.0)
    assert shape(built) == shape(regularizers_from_config(words, model.spec))
    assert [type(r) for r in built] == [
        {"regularizer": EquivarianceRegularizer, "constrained": ConstrainedEquivarianceRegularizer}.get(
            kind, MixedEquivarianceRegularizer
        )
    ]


def test_groups_may_be_names_or_groups():
    by_name = regularizers_from_config({"regularizers": ["so3", {"group": "o3", "n_samples": 2}]}, SPEC)
    by_group = regularizers_from_config({"regularizers": [SO3(), {"group": O3(), "n_samples": 2}]}, SPEC)
    assert shape(by_name) == shape(by_group) and [r.name for r in by_name] == ["SO3", "O3"]
    assert regularizers_from_config({"regularizers": "so3"}, SPEC)[0].name == "SO3"  # one entry, not a list


def test_an_empty_constraint_mapping_is_a_constraint_with_its_defaults():
    (reg,) = regularizers_from_config({"regularizers": ["so3"], "constrained": {}}, SPEC)
    assert isinstance(reg, ConstrainedEquivarianceRegularizer) and reg.epsilon == pytest.approx(1e-3)
    for off in (None, False):
        (plain,) = regularizers_from_config({"regularizers": ["so3"], "constrained": off}, SPEC)
        assert type(plain) is EquivarianceRegularizer


def test_nothing_asked_is_no_regularizer_and_words_without_a_group_are_refused():
    assert regularizers_from_config({}, SPEC) == []
    with pytest.raises(ConfigError, match="regularizers: expected entries with a 'group' key, got 3"):
        regularizers_from_config({"regularizers": [3]}, SPEC)
    with pytest.raises(ConfigError, match="constrained: expected at least one entry in regularizers"):
        regularizers_from_config({"constrained": {}}, SPEC)

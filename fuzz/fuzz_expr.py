"""Router conditions: any text compiles or raises ConditionError naming a column; a compiled
condition evaluates to a bool on any message without raising."""

from __future__ import annotations

import atheris

with atheris.instrument_imports():
    from _common import main

    from cc.agent.expr import ConditionError, compile_condition
    from cc.agent.message import Message

MESSAGES = [
    Message("cpu_load", {"type": "node", "hostname": "n1", "cluster": "c1"}, {"unit": "load"}, 1.5, 1.7e9),
    Message("x y", {"type": "hwthread", "type-id": "3"}, {}, -0.0, 0.0),
    Message("", {}, {"a": ""}, 10**20, -1.0),
]
ENV = {"nodes": ["n1", "n2"], "limit": 3}


def one_input(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        cond = compile_condition(text, "fuzz", ENV)
    except ConditionError as e:
        assert str(e).startswith("fuzz: "), e
        return
    for m in MESSAGES:
        assert isinstance(cond(m), bool)


if __name__ == "__main__":
    main(one_input)

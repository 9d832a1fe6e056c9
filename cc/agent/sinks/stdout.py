"""``stdout`` sink: line protocol to stdout, stderr or a file (``output_file``), one write per round."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from cc.agent.collectors._base import AgentConfigError
from cc.agent.sinks._base import Sink


class StdoutSink(Sink):
    type = "stdout"
    options = {"output_file"}

    def __init__(self, name: str, cfg: dict[str, Any]):
        super().__init__(name, cfg)
        target = cfg.get("output_file", "stdout")
        if not isinstance(target, str) or not target:
            raise AgentConfigError(f"{self.where}.output_file: expected a file name, 'stdout' or 'stderr'")
        self.target = target
        self.out: TextIO | None = None

    def _file(self) -> TextIO:
        if self.out is None:
            if self.target == "stdout":
                self.out = sys.stdout
            elif self.target == "stderr":
                self.out = sys.stderr
            else:
                try:
                    self.out = open(self.target, "a", encoding="utf-8")  # noqa: SIM115
                except OSError as e:
                    raise AgentConfigError(f"{self.where}.output_file: cannot open {self.target!r}: {e}") from None
        return self.out

    def accept(self, lines: list[str]) -> None:
        if lines:
            f = self._file()
            f.write("\n".join(lines) + "\n")
            f.flush()
            self.sent_points += len(lines)

    def close(self) -> None:
        if self.out is not None and self.out not in (sys.stdout, sys.stderr):
            self.out.close()
        self.out = None

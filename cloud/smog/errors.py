"""The three ways the Stop Smog calculator refuses something: a bad data file (for the city's staff), a bad
import file (for whoever runs the import) and a resident's bad input (in Polish, naming the field)."""

from __future__ import annotations

from dataclasses import dataclass


class SmogDataError(ValueError):
    """A data file in ``cloud/smog/data`` is missing, unreadable or holds a value the calculator refuses.

    Each problem is one line: ``<file>: <field.path>: <reason>``.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid Stop Smog data:\n" + "\n".join(f"  {problem}" for problem in problems))


@dataclass(frozen=True)
class RowProblem:
    """One refused row of an import file; ``line`` is 1-based as an editor shows it (0 for the whole file)."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


class SmogImportError(ValueError):
    """An import file has refused rows; nothing of the import was written."""

    def __init__(self, problems: list[RowProblem]) -> None:
        self.problems = problems
        shown = "\n".join(f"  {problem}" for problem in problems[:50])
        more = f"\n  … and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{len(problems)} bad row(s), nothing imported:\n{shown}{more}")


class SmogInputError(ValueError):
    """A resident's input the calculator cannot use; ``message_pl`` names the field, in Polish.

    ``field`` is the request field's name (dotted for nested fields, as in ``loan.years``), so that an API
    can point at it.
    """

    def __init__(self, field: str, message_pl: str) -> None:
        self.field = field
        self.message_pl = message_pl
        super().__init__(message_pl)

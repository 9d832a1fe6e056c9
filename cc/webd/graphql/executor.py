"""graphql-core's executor, made to run under Trio.

graphql-core awaits sibling async fields (and async list items) together with an
asyncio-only helper (``gather_with_cancel``); under Trio that dies with "unrecognized
yield message".  :class:`TrioExecutor` is graphql-core's own executor with that helper
swapped for :func:`trio_gather` — only in this class, so nothing else in the process
changes — and with background settling done by a Trio system task.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Sequence
from typing import Any

import trio
from graphql import GraphQLList, GraphQLNonNull, GraphQLResolveInfo, GraphQLScalarType
from graphql.execution.executor_throwing_on_incremental import ExecutorThrowingOnIncremental

ASYNCIO_HELPERS = ("gather_with_cancel",)


async def trio_gather(*awaitables: Awaitable[Any]) -> list[Any]:
    """Await all concurrently, results in order; the first error cancels the rest and is re-raised as is.

    Re-raising the bare exception (not an ExceptionGroup) matters: graphql-core turns a
    GraphQLError bubbling out of a non-null field into ``null`` plus an error entry.
    """
    results: list[Any] = [None] * len(awaitables)
    failure: list[BaseException] = []

    async with trio.open_nursery() as nursery:
        async def run(i: int, aw: Awaitable[Any]) -> None:
            try:
                results[i] = await aw
            except Exception as e:  # noqa: BLE001 - handed to the caller below
                if not failure:
                    failure.append(e)
                nursery.cancel_scope.cancel()

        for i, aw in enumerate(awaitables):
            nursery.start_soon(run, i, aw)
    if failure:
        raise failure[0]
    return results


def _uses(code: types.CodeType, names: tuple[str, ...]) -> bool:
    if any(n in code.co_names for n in names):
        return True
    return any(isinstance(c, types.CodeType) and _uses(c, names) for c in code.co_consts)


def _rebind(fn: types.FunctionType, globs: dict[str, Any]) -> types.FunctionType:
    new = types.FunctionType(fn.__code__, globs, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__qualname__ = fn.__qualname__
    new.__doc__ = fn.__doc__
    return new


class TrioExecutor(ExecutorThrowingOnIncremental):
    """ExecutorThrowingOnIncremental (what ``graphql.execute`` uses) with Trio concurrency.

    Lists of the scalars in ``FAST_SCALAR_LISTS`` (metric data: long float lists) are
    coerced in one pass instead of item by item, which is ~10x faster for big series.
    """

    FAST_SCALAR_LISTS = frozenset({"NullableFloat"})

    def complete_list_value(self, return_type: GraphQLList, field_details_list: Any, info: GraphQLResolveInfo,
                            path: Any, result: Any, position_context: Any) -> Any:
        item = return_type.of_type
        leaf = item.of_type if isinstance(item, GraphQLNonNull) else item
        if isinstance(leaf, GraphQLScalarType) and leaf.name in self.FAST_SCALAR_LISTS and \
                isinstance(result, (list, tuple)):
            coerce = leaf.coerce_output_value
            try:
                out = [coerce(v) for v in result]
            except Exception:  # noqa: BLE001 - the item-by-item path reports it with its path
                out = None
            if out is not None and (leaf is item or None not in out):
                return out
        return super().complete_list_value(return_type, field_details_list, info, path, result, position_context)

    def gather_async_work(self, values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
        return trio_gather(*values)

    def settle_in_background(self, awaitables: list[Awaitable[Any]]) -> None:
        """Awaitables abandoned after a sibling's synchronous error still run to their end."""
        async def settle() -> None:
            for aw in awaitables:
                try:
                    await aw
                except Exception:  # noqa: BLE001, S110 - their errors are no longer anyone's
                    pass

        try:
            trio.lowlevel.spawn_system_task(settle)
        except RuntimeError:  # not inside trio.run: nothing can await them
            for aw in awaitables:
                close = getattr(aw, "close", None)
                if close is not None:
                    close()


def _install() -> None:
    """Copy every inherited method that calls an asyncio helper, with Trio's helper in its globals."""
    for klass in TrioExecutor.__mro__[1:]:
        for name, fn in vars(klass).items():
            if name in vars(TrioExecutor) or not isinstance(fn, types.FunctionType):
                continue
            if _uses(fn.__code__, ASYNCIO_HELPERS):
                globs = dict(fn.__globals__)
                globs["gather_with_cancel"] = trio_gather
                setattr(TrioExecutor, name, _rebind(fn, globs))


_install()

"""A read query compiled once per process and database, then run with a new parameter.

Django compiles a queryset's SQL on every evaluation. For the survey link's lookup (six tables
joined by ``select_related``) the compiling cost more than running the statement on
PostgreSQL, on the hottest path of the product: every partner opening or answering the form.
``CompiledQuery`` builds the queryset once per database alias with a stand-in parameter, keeps
its SQL, the column converters and the populators of the related objects, and then per call
runs the same SQL with the real parameter and builds the instances exactly as Django's own
``ModelIterable`` does (``from_db`` and ``RelatedPopulator``: related objects, including a
missing reverse one-to-one, are cached on the result as ``select_related`` leaves them).

The same SQL string on each call also lets PostgreSQL's prepared statements (see
``nps_project.postgresql``) skip planning. ``tests/test_compiled_query.py`` checks the result
against the plain queryset, field by field, on both databases. It leans on two Django internals,
``SQLCompiler``'s ``select``/``klass_info``/``get_converters`` and
``django.db.models.query.get_related_populators`` (Django 5.2, pinned): the test fails loudly
if an upgrade changes them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet
from django.db.models.query import get_related_populators

_STAND_IN = "nps-compiled-query-parameter-7f3a9c"


@dataclass(frozen=True)
class _Plan:
    sql: str
    params: tuple
    index: int  # where the parameter goes in ``params``
    converters: tuple  # (position, converters, expression)
    model: type
    init_list: tuple[str, ...]
    start: int
    end: int
    populators: tuple


class CompiledQuery:
    """``build(value)`` returns the queryset for one parameter value (a string compared for
    equality in a filter); ``first(value)`` returns its first instance or None. The queryset
    must select one model with ``select_related`` only: no annotations, no deferred fields,
    no ``prefetch_related`` (which a plain SQL run would not do)."""

    def __init__(self, build: Callable[[str], QuerySet]):
        self._build = build
        self._plans: dict[tuple[str, str], _Plan] = {}
        self._lock = threading.Lock()

    def _plan(self, using: str) -> _Plan:
        connection = connections[using]
        key = (using, connection.vendor)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        queryset = self._build(_STAND_IN)
        query = queryset.query
        deferred = query.deferred_loading[0]
        if query.annotation_select or deferred or queryset._prefetch_related_lookups:
            raise ValueError("CompiledQuery takes plain select_related querysets only")
        compiler = query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        indexes = [i for i, p in enumerate(params) if p == _STAND_IN]
        if len(indexes) != 1:
            raise ValueError("the parameter must appear exactly once in the query")
        columns = [s[0] for s in compiler.select[0 : compiler.col_count]]
        converters = tuple(
            (position, tuple(convs), expression)
            for position, (convs, expression) in compiler.get_converters(columns).items()
        )
        klass_info = compiler.klass_info
        select_fields = klass_info["select_fields"]
        start, end = select_fields[0], select_fields[-1] + 1
        plan = _Plan(
            sql=sql,
            params=tuple(params),
            index=indexes[0],
            converters=converters,
            model=klass_info["model"],
            init_list=tuple(f[0].target.attname for f in compiler.select[start:end]),
            start=start,
            end=end,
            populators=tuple(get_related_populators(klass_info, compiler.select, using)),
        )
        with self._lock:
            self._plans[key] = plan
        return plan

    def first(self, value: str, *, using: str = DEFAULT_DB_ALIAS):
        plan = self._plan(using)
        connection = connections[using]
        params = list(plan.params)
        params[plan.index] = value
        with connection.cursor() as cursor:
            cursor.execute(plan.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        row = list(row)
        for position, convs, expression in plan.converters:
            field_value = row[position]
            for convert in convs:
                field_value = convert(field_value, expression, connection)
            row[position] = field_value
        instance = plan.model.from_db(using, plan.init_list, row[plan.start : plan.end])
        for populator in plan.populators:
            populator.populate(row, instance)
        return instance

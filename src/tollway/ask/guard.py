"""Only a single SELECT over Ask's views passes; everything else is refused with the reason.

The model's SQL is parsed with sqlglot in the store's dialect. Refused: anything that is not
one SELECT (several statements, DML, DDL, PRAGMA, ATTACH, SELECT INTO, locking clauses); a
table that is not one of the views (or a CTE of the query itself); schema-qualified names; a
table-valued function; any function not on the allow list (file, sleep, settings, extension
and catalog functions are not on it); more than `MAX_TABLE_REFS` table references. A LIMIT of
at most `max_rows` is enforced. The read-only execution (readonly.py) is the second fence.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from tollway.ask.schema import VIEWS

MAX_TABLE_REFS = 4

# sqlglot expression classes of harmless scalar, aggregate and window functions
_ALLOWED_FUNCS = frozenset({
    "Abs", "Avg", "Case", "Cast", "Ceil", "Coalesce", "Concat", "Count", "CountIf", "CurrentDate",
    "CurrentTimestamp", "Date", "DateAdd", "DateDiff", "DateStrToDate", "DateSub", "DateTrunc", "DayOfMonth",
    "DayOfWeek", "DenseRank", "Div", "DPipe", "Exp", "Extract", "FirstValue", "Floor", "Greatest", "GroupConcat",
    "If", "Initcap", "Lag", "LastValue", "Lead", "Least", "Left", "Length", "Ln", "Log", "Lower", "Max", "Min",
    "Month", "NthValue", "Nullif", "PercentileCont", "PercentileDisc", "Pow", "Quantile", "Rank", "Replace",
    "Right", "Round", "RowNumber", "Sign", "Sqrt", "StddevPop", "StddevSamp", "Stddev", "StrPosition",
    "StrToDate", "StrToTime", "Substring", "Sum", "TimeStrToTime", "TimeStrToUnix", "TimeToStr", "TimeToUnix",
    "TimestampTrunc", "Trim", "TryCast", "TsOrDsToDate", "TsOrDsToTimestamp", "UnixToStr", "UnixToTime", "Upper",
    "VariancePop", "Variance", "Year", "Week", "ArrayAgg", "ToChar", "Mod", "NullIf",
})
# functions sqlglot does not know by class (lower case)
_ALLOWED_NAMES = frozenset({
    "date", "datetime", "time", "julianday", "unixepoch", "strftime", "total", "ifnull", "printf", "format",
    "instr", "to_timestamp", "to_char", "date_part", "date_trunc", "string_agg", "median", "iif", "nullif",
    "substr", "trunc", "ceiling", "power", "coalesce", "round", "avg", "sum", "count", "min", "max",
})


class RefusedSql(ValueError):
    """The SQL is not allowed; the message says why (it is shown with the SQL)."""


def check(sql: str, dialect: str, max_rows: int) -> str:
    """The SQL to run (with its LIMIT), or RefusedSql."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except sqlglot.errors.SqlglotError as e:
        raise RefusedSql(f"The SQL does not parse: {str(e).splitlines()[0][:200]}") from None
    if len(statements) != 1:
        raise RefusedSql(f"Exactly one statement is allowed; this has {len(statements)}.")
    stmt = statements[0]
    if not isinstance(stmt, exp.Query):
        raise RefusedSql(f"Only SELECT queries are allowed, not {stmt.key.upper()}.")
    for node in stmt.walk():
        if isinstance(node, (exp.DML, exp.DDL, exp.Command, exp.Pragma, exp.Attach, exp.Detach, exp.Lock,
                             exp.Into, exp.Transaction, exp.Set)):
            raise RefusedSql(f"{node.key.upper()} is not allowed in a read-only question.")
        if isinstance(node, exp.Func):
            _check_function(node)
    ctes = {c.alias_or_name.lower() for c in stmt.find_all(exp.CTE)}
    refs = 0
    for table in stmt.find_all(exp.Table):
        refs += 1
        if not isinstance(table.this, exp.Identifier):
            raise RefusedSql("Table functions are not allowed; read the views "
                             f"({', '.join(VIEWS)}).")
        if table.args.get("db") or table.args.get("catalog"):
            raise RefusedSql(f"Qualified names such as {table.sql(dialect=dialect)} are not allowed.")
        name = table.name.lower()
        if name not in VIEWS and name not in ctes:
            raise RefusedSql(f"Table {table.name!r} is not allowed; only {', '.join(VIEWS)} may be read.")
    if refs > MAX_TABLE_REFS:
        raise RefusedSql(f"At most {MAX_TABLE_REFS} table references (joins) are allowed; this has {refs}.")
    return _limited(stmt, max_rows).sql(dialect=dialect)


def _check_function(node: exp.Func) -> None:
    if isinstance(node, exp.Anonymous):
        name = str(node.name).lower()
        if name not in _ALLOWED_NAMES:
            raise RefusedSql(f"Function {name}() is not allowed.")
    elif type(node).__name__ not in _ALLOWED_FUNCS:
        raise RefusedSql(f"Function {node.sql_name().lower()}() is not allowed.")


def _limited(stmt: exp.Query, max_rows: int) -> exp.Query:
    if isinstance(stmt, exp.Select):
        limit = stmt.args.get("limit")
        current = limit.expression if isinstance(limit, exp.Limit) else None
        if isinstance(current, exp.Literal) and current.is_int and int(current.this) <= max_rows:
            return stmt
        return stmt.limit(max_rows)
    return exp.select("*").from_(stmt.subquery("q")).limit(max_rows)

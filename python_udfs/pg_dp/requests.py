"""The request kinds the executor serves, and which engine function answers each.

A request is (role, kind, payload): the role is taken by the caller's backend (C), never from the
payload; the payload is a JSON object of the handler's keyword arguments (executor.py checks it
against the handler's signature before calling).  A handler returns its reply, or is a generator
whose every `yield` ends a phase (committed by the executor before the next one runs: the charge).

kind              handler                                   payload
query             gateway.serve.query_reply                 sql, epsilon, delta, expect (column list),
                                                            session_epsilon, params ($n values), timezone
query_json        gateway.serve.query_json_reply            sql, epsilon, delta, session_epsilon, timezone
cost              gateway.serve.cost_reply                  sql, epsilon, delta, session_epsilon, timezone
explain           gateway.serve.explain_reply               sql, epsilon, delta, columns_only, session_epsilon,
                                                            params, timezone
synthetic_copy    gateway.serve.synthetic_copy_reply        relid (a row-level read answered from a copy)
split             gateway.serve.split_reply                 sql, params ($n types), search_path, timezone,
                                                            session_epsilon (the plain-SQL hook, at parse time)
statement         gateway.serve.statement_reply             cores, expect, params, session_epsilon, timezone
                                                            (a statement's measurements, charged once)
create_view       gateway.views.register                    sql, epsilon, delta
view              gateway.views.answer                      id, expect
synthesize        synth.run.synthesize_steps                source, epsilon, delta, target_schema, rows, ...
evaluate          synth.report.evaluate_reply               source, synthetic, targets
evaluate_schema   synth.evaluate_schema.evaluate_reply      real_schema, synthetic_schema

Adding a request kind: a handler function, one line in HANDLERS, the SQL function that sends it
(sql/60_gateway.sql or 70_synth.sql) and its test; a long, large kind goes into the pool's
synthesis lane and a kind that costs nothing into the rate limit on free requests: both lists are
in src/worker/session.c (request_lane, free_request_kind).
"""

# kind -> (module, function); modules are imported on first use (synthesis pulls in
# numpy, mbi and JAX, which a session asking questions never needs)
HANDLERS = {
    "query": ("pg_dp.gateway.serve", "query_reply"),
    "query_json": ("pg_dp.gateway.serve", "query_json_reply"),
    "cost": ("pg_dp.gateway.serve", "cost_reply"),
    "explain": ("pg_dp.gateway.serve", "explain_reply"),
    "synthetic_copy": ("pg_dp.gateway.serve", "synthetic_copy_reply"),
    "split": ("pg_dp.gateway.serve", "split_reply"),
    "statement": ("pg_dp.gateway.serve", "statement_reply"),
    "create_view": ("pg_dp.gateway.views", "register"),
    "view": ("pg_dp.gateway.views", "answer"),
    "synthesize": ("pg_dp.synth.run", "synthesize_steps"),
    "evaluate": ("pg_dp.synth.report", "evaluate_reply"),
    "evaluate_schema": ("pg_dp.synth.evaluate_schema", "evaluate_reply"),
}

# what a spare executor loads before any session adopts it (the first question's modules)
WARM_MODULES = ("pg_dp.gateway.serve", "pg_dp.gateway.keyexprs")

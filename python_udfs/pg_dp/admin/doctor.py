"""dp.doctor(): every remaining way a role could read a protected table or learn an exact
statistic of it, each with the SQL that closes it.

dp.protect and pg_dp's event trigger close most paths by themselves; the doctor finds
the ones they cannot (a foreign key someone may probe, a SECURITY DEFINER function, a
role membership) and the ones reopened while the event trigger was off.  No rows: all
closed.  A row's table_name is the protected table the path leads to (NULL: the whole
database).
"""

import json

from ..core import db
from .protect import version_trigger_sql

GUARD_TRIGGERS = ("dp_guard",)


def doctor(known_limits=False):
    db.execute("SELECT dp_internal.require_admin($1)", ["run dp.doctor"], ["text"])
    rows = []
    for check in (_unprotected_children, _grants, _version_triggers, _owners, _memberships, _foreign_keys,
                  _referenced_writable, _security_definer_functions, _rules, _publications, _stat_functions,
                  _event_triggers, _broken_paths, _references, _foreign_code, _writer, _shadow_schemas,
                  _createrole):
        rows.extend(check())
    if known_limits:
        rows.extend(_known_limits())
        rows.extend(_executor_mode())
    return [{"table_name": str(t) if t is not None else None, "issue": i, "detail": d, "fix": f}
            for t, i, d, f in rows]


def _who(oid) -> str:
    if oid == 0:
        return "PUBLIC"
    return db.quote_ident(db.execute("SELECT pg_catalog.pg_get_userbyid($1) AS n", [oid], ["oid"])[0]["n"])


def _unprotected_children():
    out = []
    for r in db.execute(
            "SELECT g.root::int8 AS root, g.relid::regclass::text AS name, g.root::regclass::text AS root_name, "
            "c.relispartition, p.dataset, p.unit_column FROM dp_internal.guarded_relations g "
            "JOIN pg_catalog.pg_class c ON c.oid = g.relid JOIN dp_internal.protected_tables p ON p.relid = g.root "
            "WHERE g.kind = 'child' ORDER BY 2"):
        what = "partition" if r["relispartition"] else "inheritance child"
        args = f"{db.quote_literal(r['root_name'])}, dataset => {db.quote_literal(r['dataset'])}"
        if r["unit_column"]:
            args += f", privacy_unit => {db.quote_literal(r['unit_column'])}"
        out.append((r["root"], f"{what} not protected",
                    f"{r['name']} is a {what} of {r['root_name']} but not protected: its grants are kept and a "
                    "write into it does not bump the data version",
                    f"SELECT dp.protect({args})"))
    return out


_ISSUE = {"table": "direct grant", "child": "grant on a partition", "view": "view readable",
          "matview": "materialized view readable", "sequence": "sequence grant"}


def _grants():
    out = []
    rows = db.execute(
        "SELECT o.root::int8 AS root, o.relid::regclass::text AS name, o.kind, o.relkind, o.grantee::int8 AS grantee, "
        "o.column_name, o.privilege_type FROM dp_internal.open_grants o ORDER BY 2, 5, 6 NULLS FIRST, 7")
    groups: dict = {}
    for r in rows:
        references = r["privilege_type"] == "REFERENCES"
        key = (r["root"], r["name"], r["kind"], r["relkind"], r["grantee"], references)
        groups.setdefault(key, []).append(r)
    for (root, name, kind, relkind, grantee, references), entries in groups.items():
        who = _who(grantee)
        privs = sorted({e["privilege_type"] + (f" ({e['column_name']})" if e["column_name"] else "") for e in entries})
        on = "SEQUENCE" if relkind == "S" else "TABLE"
        fixes = []
        if any(e["column_name"] is None for e in entries):
            fixes.append(f"REVOKE ALL ON {on} {name} FROM {who} CASCADE")
        cols = sorted({e["column_name"] for e in entries if e["column_name"]})
        if cols:
            fixes.append(f"REVOKE ALL ({', '.join(db.quote_ident(c) for c in cols)}) ON TABLE {name} FROM {who} CASCADE")
        if references:
            issue = "REFERENCES grant"
            detail = (f"{who} holds {', '.join(privs)} on {name}: a foreign key from their own table tells whether "
                      "a key is in it")
        else:
            issue = _ISSUE.get(kind, "grant")
            detail = f"{who} holds {', '.join(privs)} on {name}"
            if kind == "matview":
                detail += " (a copy of protected rows)"
        out.append((root, issue, detail, "; ".join(fixes)))
    return out


def _version_triggers():
    out = []
    for r in db.execute(
            "SELECT g.relid::int8 AS relid, g.relid::regclass::text AS name, g.tgenabled, c.relkind, "
            "g.tgfoid IS NOT NULL AND g.tgfoid <> 'dp_internal.bump_data_version()'::pg_catalog.regprocedure AS alien "
            "FROM dp_internal.version_trigger_gaps g JOIN pg_catalog.pg_class c ON c.oid = g.relid ORDER BY 2"):
        alter = "ALTER FOREIGN TABLE" if r["relkind"] == "f" else "ALTER TABLE"
        if r["tgenabled"] is None or r["alien"]:
            drop = f"DROP TRIGGER dp_data_version ON {r['name']}; " if r["alien"] else ""
            out.append((r["relid"], "data-version trigger missing",
                        f"a write into {r['name']} does not bump the data version: cached answers stay stale",
                        drop + version_trigger_sql(r["name"], r["relkind"])))
        else:
            state = {"O": "ENABLE (origin only)", "R": "ENABLE REPLICA", "D": "DISABLED"}.get(r["tgenabled"],
                                                                                           r["tgenabled"])
            out.append((r["relid"], "data-version trigger not ENABLE ALWAYS",
                        f"the dp_data_version trigger of {r['name']} is {state}, not ENABLE ALWAYS: some writes "
                        "(session_replication_role = replica, as logical replication applies) do not bump the "
                        "data version", f"{alter} {r['name']} ENABLE ALWAYS TRIGGER dp_data_version"))
    return out


def _owners():
    """Partitions and materialized views owned by a role that cannot read the protected table
    otherwise: the owner reads (and may grant) them whatever pg_dp revokes.  A recorded
    partition is compared with its protected parent, a materialized view with its table."""
    out = []
    for r in db.execute(
            "SELECT a.anchor::int8 AS anchor, g.relid::regclass::text AS name, g.kind, c.relkind, "
            "pg_catalog.pg_get_userbyid(c.relowner) AS owner, pg_catalog.pg_get_userbyid(t.relowner) AS anchor_owner "
            "FROM dp_internal.guarded_relations g JOIN pg_catalog.pg_class c ON c.oid = g.relid "
            "CROSS JOIN LATERAL (SELECT CASE WHEN g.kind = 'table' THEN (SELECT i.inhparent FROM pg_catalog.pg_inherits i "
            "  JOIN dp_internal.protected_tables q ON q.relid = i.inhparent WHERE i.inhrelid = g.relid LIMIT 1) "
            "  ELSE g.root END AS anchor) a "
            "JOIN pg_catalog.pg_class t ON t.oid = a.anchor "
            "JOIN pg_catalog.pg_roles o ON o.oid = c.relowner "
            "WHERE g.kind IN ('table', 'child', 'matview') AND c.relowner <> t.relowner AND NOT o.rolsuper "
            "AND NOT pg_catalog.has_table_privilege(c.relowner, 'dp_internal.datasets', 'UPDATE') "
            "AND NOT pg_catalog.pg_has_role(c.relowner, t.relowner, 'USAGE') ORDER BY 2"):
        owner = db.quote_ident(r["owner"])
        if r["kind"] == "matview":
            out.append((r["anchor"], "materialized view copy owned by another role",
                        f"{r['name']} holds a copy of protected rows and is owned by {owner}, who reads it",
                        f"DROP MATERIALIZED VIEW {r['name']}"))
        else:
            alter = "ALTER FOREIGN TABLE" if r["relkind"] == "f" else "ALTER TABLE"
            out.append((r["anchor"], "partition owned by another role",
                        f"{r['name']} is owned by {owner}, who reads and may grant it",
                        f"{alter} {r['name']} OWNER TO {db.quote_ident(r['anchor_owner'])}"))
    return out


def _memberships():
    """Roles that read a protected table through membership: in its owner role, or in
    pg_read_all_data / pg_write_all_data.  One row per membership to revoke."""
    out = []
    for r in db.execute(
            """
            WITH RECURSIVE targets AS (
                SELECT p.relid, c.relowner AS target FROM dp_internal.protected_tables p
                JOIN pg_catalog.pg_class c ON c.oid = p.relid
                UNION
                SELECT p.relid, r.oid FROM dp_internal.protected_tables p
                JOIN pg_catalog.pg_class c ON c.oid = p.relid
                CROSS JOIN pg_catalog.pg_roles r WHERE r.rolname IN ('pg_read_all_data', 'pg_write_all_data')
            ), members(relid, granted, member, depth) AS (
                SELECT t.relid, m.roleid, m.member, 1 FROM targets t
                JOIN pg_catalog.pg_auth_members m ON m.roleid = t.target
                UNION ALL
                SELECT s.relid, m.roleid, m.member, s.depth + 1 FROM members s
                JOIN pg_catalog.pg_auth_members m ON m.roleid = s.member WHERE s.depth < 16
            )
            SELECT DISTINCT s.relid::int8 AS relid, s.relid::regclass::text AS name,
                   pg_catalog.pg_get_userbyid(s.granted) AS granted, pg_catalog.pg_get_userbyid(s.member) AS member
            FROM members s JOIN pg_catalog.pg_roles r ON r.oid = s.member
            WHERE NOT r.rolsuper AND NOT pg_catalog.has_table_privilege(s.member, 'dp_internal.datasets', 'UPDATE')
            ORDER BY 2, 3, 4
            """):
        granted, member = db.quote_ident(r["granted"]), db.quote_ident(r["member"])
        out.append((r["relid"], "role membership",
                    f"{member} is a member of {granted} and so may read {r['name']} (or, by SET ROLE, act as it)",
                    f"REVOKE {granted} FROM {member}"))
    return out


def _foreign_keys():
    out = []
    for r in db.execute(
            "SELECT f.root::int8 AS root, f.conname, f.conrelid::regclass::text AS rel, "
            "f.confrelid::regclass::text AS target, f.writers FROM dp_internal.probing_foreign_keys f ORDER BY 3, 2"):
        out.append((r["root"], "foreign key from an unprotected table",
                    f"{r['conname']} of {r['rel']} references {r['target']}; {', '.join(r['writers'])} may write "
                    f"{r['rel']}, and each insert or update tells them exactly whether the value they try is a key "
                    f"of {r['target']} (a foreign-key violation or none): membership of any key they can guess",
                    f"ALTER TABLE {r['rel']} DROP CONSTRAINT {db.quote_ident(r['conname'])}"))
    return out


def _referenced_writable():
    """A protected table's foreign key to a table others may DELETE, UPDATE or TRUNCATE:
    a violation (or a cascade) tells whether a protected row references a key."""
    out = []
    for r in db.execute(
            "SELECT p.relid::int8 AS relid, k.conname, k.conrelid::regclass::text AS rel, "
            "k.confrelid::regclass::text AS target, a.grantee::int8 AS grantee, "
            "pg_catalog.string_agg(DISTINCT a.privilege_type, ', ') AS privs "
            "FROM dp_internal.protected_tables p JOIN pg_catalog.pg_constraint k ON k.conrelid = p.relid "
            "AND k.contype = 'f' AND k.conparentid = 0 "
            "JOIN pg_catalog.pg_class t ON t.oid = k.confrelid, LATERAL pg_catalog.aclexplode(t.relacl) a "
            "WHERE a.privilege_type IN ('DELETE', 'UPDATE', 'TRUNCATE') AND a.grantee <> t.relowner "
            "AND NOT EXISTS (SELECT 1 FROM dp_internal.protected_tables q WHERE q.relid = k.confrelid) "
            "AND (a.grantee = 0 OR NOT pg_catalog.has_table_privilege(a.grantee, p.relid, 'SELECT')) "
            "GROUP BY 1, 2, 3, 4, 5 ORDER BY 3, 2, 5"):
        who = _who(r["grantee"])
        out.append((r["relid"], "foreign key to a writable table",
                    f"{who} may {r['privs']} {r['target']}, referenced by {r['conname']} of {r['rel']}: a violation "
                    f"or a cascade tells whether a row of {r['rel']} references a key",
                    f"REVOKE DELETE, UPDATE, TRUNCATE ON TABLE {r['target']} FROM {who}"))
    return out


def _security_definer_functions():
    """SECURITY DEFINER functions (outside extensions) whose owner may read a protected
    relation, whose body names it (a heuristic on prosrc, or a recorded dependency), and
    that a role unable to read it may execute."""
    out = []
    for r in db.execute(
            r"""
            SELECT DISTINCT g.root::int8 AS root, c.relname::text AS relname, g.relid::regclass::text AS name,
                   p.oid::pg_catalog.regprocedure::text AS fn, pg_catalog.pg_get_userbyid(p.proowner) AS owner,
                   x.grantee::int8 AS grantee
            FROM dp_internal.guarded_relations g
            JOIN pg_catalog.pg_class c ON c.oid = g.relid
            JOIN pg_catalog.pg_proc p ON p.prosecdef
            CROSS JOIN LATERAL (
                SELECT 0::oid AS grantee WHERE p.proacl IS NULL
                UNION
                SELECT a.grantee FROM pg_catalog.aclexplode(p.proacl) a
                WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
                  AND (a.grantee = 0 OR NOT pg_catalog.has_table_privilege(a.grantee, g.relid, 'SELECT'))
            ) x
            WHERE g.kind IN ('table', 'child', 'view', 'matview')
              AND p.pronamespace NOT IN ('pg_catalog'::pg_catalog.regnamespace,
                                         'information_schema'::pg_catalog.regnamespace)
              AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                              AND e.objid = p.oid AND e.deptype = 'e')
              AND pg_catalog.has_table_privilege(p.proowner, g.relid, 'SELECT')
              AND (p.prosrc ~* ('\m' || pg_catalog.regexp_replace(c.relname, '([^[:alnum:]_])', '\\\1', 'g') || '\M')
                   OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                              AND d.objid = p.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                              AND d.refobjid = g.relid))
            ORDER BY 4, 3, 6
            """):
        who = _who(r["grantee"])
        out.append((r["root"], "SECURITY DEFINER function",
                    f"{r['fn']} runs as {db.quote_ident(r['owner'])}, who may read {r['name']}; its body names "
                    f"{r['relname']} and {who} may execute it",
                    f"REVOKE EXECUTE ON FUNCTION {r['fn']} FROM {who}"))
    return out


def _rules():
    """Rules on other tables (not views) whose actions read a protected relation: they run
    with the rule owner's rights for whoever writes that table."""
    out = []
    for r in db.execute(
            "SELECT DISTINCT g.root::int8 AS root, w.rulename, w.ev_class::regclass::text AS rel, "
            "g.relid::regclass::text AS name FROM dp_internal.guarded_relations g "
            "JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass "
            "AND d.refobjid = g.relid AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass "
            "JOIN pg_catalog.pg_rewrite w ON w.oid = d.objid JOIN pg_catalog.pg_class c ON c.oid = w.ev_class "
            "WHERE c.relkind NOT IN ('v', 'm') AND w.ev_class <> g.relid ORDER BY 3, 2"):
        out.append((r["root"], "rule reads protected data",
                    f"rule {r['rulename']} on {r['rel']} reads {r['name']} with its owner's rights",
                    f"DROP RULE {db.quote_ident(r['rulename'])} ON {r['rel']}"))
    return out


def _publications():
    out = []
    for r in db.execute(
            "SELECT DISTINCT g.root::int8 AS root, g.relid::regclass::text AS name, b.pubname, b.puballtables "
            "FROM dp_internal.guarded_relations g JOIN pg_catalog.pg_class c ON c.oid = g.relid "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_catalog.pg_publication_tables t ON t.schemaname = n.nspname AND t.tablename = c.relname "
            "JOIN pg_catalog.pg_publication b ON b.pubname = t.pubname "
            "WHERE g.kind IN ('table', 'child') ORDER BY 3, 2"):
        pub = db.quote_ident(r["pubname"])
        fix = (f"DROP PUBLICATION {pub}" if r["puballtables"]
               else f"ALTER PUBLICATION {pub} DROP TABLE {r['name']}")
        out.append((r["root"], "published for logical replication",
                    f"publication {pub} sends the rows of {r['name']} to its subscribers", fix))
    return out


def _stat_functions():
    names = [r["f"] for r in db.execute(
        "SELECT s::text AS f FROM dp_internal.relation_stat_functions() s JOIN pg_catalog.pg_proc p ON p.oid = s "
        "WHERE p.proacl IS NULL OR EXISTS (SELECT 1 FROM pg_catalog.aclexplode(p.proacl) a WHERE a.grantee = 0) "
        "ORDER BY 1")]
    if not names:
        return []
    qualified = ", ".join(f"pg_catalog.{n}" for n in names)
    return [(None, "statistics functions executable by PUBLIC",
             f"{', '.join(names)} show exact counters of protected tables (n_live_tup, seq_tup_read, idx_tup_fetch "
             "in pg_stat_user_tables) to every role",
             f"REVOKE EXECUTE ON FUNCTION {qualified} FROM PUBLIC; "
             f"GRANT EXECUTE ON FUNCTION {qualified} TO pg_read_all_stats")]


def _event_triggers():
    out = []
    present = {r["evtname"]: r["evtenabled"] for r in db.execute(
        "SELECT evtname, evtenabled FROM pg_catalog.pg_event_trigger WHERE evtname = ANY($1)",
        [list(GUARD_TRIGGERS)], ["text[]"])}
    for name in GUARD_TRIGGERS:
        if name not in present:
            out.append((None, "event trigger missing",
                        f"pg_dp's event trigger {name} is gone: later GRANTs, partitions and views stay open",
                        "CREATE EVENT TRIGGER dp_guard ON ddl_command_end WHEN TAG IN ('GRANT', 'CREATE TABLE', "
                        "'ALTER TABLE', 'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE', 'CREATE VIEW', 'ALTER VIEW', "
                        "'CREATE MATERIALIZED VIEW', 'ALTER MATERIALIZED VIEW', 'CREATE RULE', 'DROP TRIGGER') "
                        "EXECUTE FUNCTION dp_internal.guard_ddl(); ALTER EVENT TRIGGER dp_guard ENABLE ALWAYS"))
        elif present[name] != "A":
            state = {"O": "enabled for origin sessions only", "R": "enabled for replica sessions only",
                     "D": "disabled"}.get(present[name], present[name])
            out.append((None, "event trigger not ENABLE ALWAYS",
                        f"pg_dp's event trigger {name} is {state}: later GRANTs, partitions and views may stay open",
                        f"ALTER EVENT TRIGGER {name} ENABLE ALWAYS"))
    return out


def _broken_paths():
    """Tables reaching their unit through foreign keys whose path no longer holds (a table on it
    unprotected, a key dropped): the gateway refuses their questions until it is fixed."""
    from ..core.catalog import resolve_path
    from ..core.errors import DPError

    out = []
    for r in db.execute(
            "SELECT p.relid::int8 AS relid, p.relid::regclass::text AS name, p.dataset, p.unit_path::text AS unit_path, "
            "d.privacy_unit FROM dp_internal.protected_tables p JOIN dp_internal.datasets d ON d.name = p.dataset "
            "JOIN pg_catalog.pg_class c ON c.oid = p.relid WHERE p.unit_path IS NOT NULL ORDER BY 2"):
        try:
            resolve_path(r, r["name"])
        except DPError as e:
            out.append((r["relid"], "foreign-key path broken",
                        f"{e.args[0]}; questions on {r['name']} are refused", getattr(e, "hint", None) or ""))
    return out


def _references():
    """Tables whose rows name a unit of their dataset more than once (a key added after dp.protect):
    the gateway and dp_synthesize refuse them until the DBA declares each extra key."""
    from ..core.catalog import describe_reference, unit_references

    out = []
    for r in db.execute(
            "SELECT p.relid::int8 AS relid, p.relid::regclass::text AS name, p.dataset, d.privacy_unit "
            "FROM dp_internal.protected_tables p JOIN dp_internal.datasets d ON d.name = p.dataset "
            "JOIN pg_catalog.pg_class c ON c.oid = p.relid WHERE d.privacy_unit IS NOT NULL ORDER BY 2"):
        refs = [x for x in unit_references(r["relid"], r["dataset"], r["privacy_unit"]) if not x["declared"]]
        if len(refs) > 1:
            keys = [x["conname"] for x in refs if x["conname"]]
            out.append((r["relid"], "a row names the unit twice",
                        f"rows of {r['name']} name a unit ({r['privacy_unit']}) through "
                        + " and ".join(describe_reference(x) for x in refs)
                        + "; questions and dp_synthesize refuse it until every reference but one is declared",
                        f"SELECT dp.protect({db.quote_literal(r['name'])}, dataset => {db.quote_literal(r['dataset'])}, "
                        f"not_personal => ARRAY[{db.quote_literal(keys[-1])}])"))
    return out


def _foreign_code():
    """Protected tables whose column types would run another role's code as the extension owner."""
    from ..core import trust

    out = []
    for r in db.execute("SELECT p.relid::int8 AS relid, p.relid::regclass::text AS name "
                        "FROM dp_internal.protected_tables p JOIN pg_catalog.pg_class c ON c.oid = p.relid ORDER BY 2"):
        for code in trust.column_code(r["relid"]):
            function = code.split(" (owned by ")[0]
            out.append((r["relid"], "column types run another role's code",
                        f"values of {r['name']} would run {code} with the extension owner's rights: questions and "
                        "dp_synthesize refuse it", f"ALTER FUNCTION {function} OWNER TO CURRENT_USER"))
    return out


def _writer():
    """dp_shadow_writer, which writes synthetic copies, must stay powerless and alone."""
    out = []
    for r in db.execute(
            "SELECT r.rolcanlogin OR r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication "
            "OR r.rolbypassrls AS powers, ARRAY(SELECT pg_catalog.pg_get_userbyid(m.member) FROM "
            "pg_catalog.pg_auth_members m WHERE m.roleid = r.oid ORDER BY 1) AS members, "
            "ARRAY(SELECT pg_catalog.pg_get_userbyid(m.roleid) FROM pg_catalog.pg_auth_members m "
            "WHERE m.member = r.oid ORDER BY 1) AS member_of "
            "FROM pg_catalog.pg_roles r WHERE r.rolname = 'dp_shadow_writer'"):
        if r["powers"]:
            out.append((None, "writer role has powers",
                        "dp_shadow_writer, which writes synthetic copies, may log in or holds SUPERUSER, CREATEROLE, "
                        "CREATEDB, REPLICATION or BYPASSRLS: dp_synthesize refuses to write",
                        "ALTER ROLE dp_shadow_writer NOLOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION "
                        "NOBYPASSRLS"))
        for m in r["members"]:
            out.append((None, "writer role has members",
                        f"{db.quote_ident(m)} may act as dp_shadow_writer and change every synthetic copy",
                        f"REVOKE dp_shadow_writer FROM {db.quote_ident(m)}"))
        for m in r["member_of"]:
            out.append((None, "writer role is a member",
                        f"dp_shadow_writer is a member of {db.quote_ident(m)}: the code it runs would have its rights",
                        f"REVOKE {db.quote_ident(m)} FROM dp_shadow_writer"))
    # privileges granted to it on anything but a shadow schema (its tables there are its own)
    for r in db.execute(
            "SELECT pg_catalog.pg_describe_object(s.classid, s.objid, s.objsubid) AS what, "
            "CASE WHEN s.classid = 'pg_catalog.pg_class'::regclass THEN 'TABLE ' || s.objid::regclass::text "
            "     WHEN s.classid = 'pg_catalog.pg_proc'::regclass THEN 'FUNCTION ' || s.objid::regprocedure::text "
            "     WHEN s.classid = 'pg_catalog.pg_namespace'::regclass THEN 'SCHEMA ' || s.objid::regnamespace::text "
            "END AS target FROM pg_catalog.pg_shdepend s "
            "WHERE s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) "
            "AND s.refclassid = 'pg_catalog.pg_authid'::regclass AND s.deptype = 'a' "
            "AND s.refobjid = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = 'dp_shadow_writer') "
            "AND NOT (s.classid = 'pg_catalog.pg_namespace'::regclass AND (EXISTS (SELECT 1 FROM "
            "         dp_internal.synthetic_tables t JOIN pg_catalog.pg_class c ON c.oid = t.relid "
            "         WHERE c.relnamespace = s.objid) "
            "     OR s.objid::regnamespace::text = (SELECT value FROM dp_internal.settings WHERE key = 'synthetic_schema') "
            "     OR pg_catalog.obj_description(s.objid, 'pg_namespace') LIKE 'pg_dp: synthetic copies made by %')) "
            "ORDER BY 1"):
        out.append((None, "writer role holds privileges",
                    f"dp_shadow_writer holds privileges on {r['what']}: whatever runs while a synthetic copy is "
                    "written could use them",
                    f"REVOKE ALL ON {r['target']} FROM dp_shadow_writer" if r["target"] else None))
    return out


def _createrole():
    """In PostgreSQL 15 a role with CREATEROLE may grant itself any role but a superuser: pg_read_all_data
    (every protected table), dp_shadow_writer (every synthetic copy).  Such a role is an administrator."""
    return [(None, "role with CREATEROLE",
             f"{db.quote_ident(r['rolname'])} has CREATEROLE: it may grant itself pg_read_all_data (and read every "
             "protected table) or dp_shadow_writer (and change every synthetic copy)",
             f"ALTER ROLE {db.quote_ident(r['rolname'])} NOCREATEROLE")
            for r in db.execute("SELECT rolname FROM pg_catalog.pg_roles WHERE rolcreaterole AND NOT rolsuper "
                                "AND NOT pg_catalog.has_table_privilege(oid, 'dp_internal.datasets', 'UPDATE') "
                                "ORDER BY 1")]


def _shadow_schemas():
    """Roles other than pg_dp's (and administrators) that may create in a schema holding synthetic
    copies: they could put a table where a copy goes, or functions BI users would find there."""
    out = []
    for r in db.execute(
            "SELECT DISTINCT n.nspname, a.grantee::int8 AS grantee FROM dp_internal.synthetic_tables s "
            "JOIN pg_catalog.pg_class c ON c.oid = s.relid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "CROSS JOIN LATERAL pg_catalog.aclexplode(n.nspacl) a "
            "WHERE a.privilege_type = 'CREATE' AND a.grantee <> n.nspowner "
            "AND a.grantee <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = 'dp_shadow_writer') "
            "AND (a.grantee = 0 OR NOT (pg_catalog.has_table_privilege(a.grantee, 'dp_internal.datasets', 'UPDATE') "
            "     OR (SELECT rolsuper FROM pg_catalog.pg_roles WHERE oid = a.grantee))) ORDER BY 1, 2"):
        who = _who(r["grantee"])
        out.append((None, "shadow schema writable",
                    f"{who} may create objects in schema {r['nspname']}, where synthetic copies are: a table where a "
                    "copy goes, or functions and operators found by whoever reads the copies",
                    f"REVOKE CREATE ON SCHEMA {db.quote_ident(r['nspname'])} FROM {who}"))
    return out


def _known_limits():
    """What no privilege closes, each with what exactly a role learns: sizes in pg_class and on
    disk, the bounded copies' existence and size, remote writes."""
    out = []
    for r in db.execute(
            "SELECT p.relid::int8 AS relid, p.relid::regclass::text AS name, c.reltuples::float8 AS reltuples, "
            "c.relpages::int8 AS relpages, pg_catalog.pg_relation_size(p.relid)::int8 AS bytes, c.relkind, "
            "pg_catalog.current_setting('default_statistics_target')::int * 300 AS sample "
            "FROM dp_internal.protected_tables p JOIN pg_catalog.pg_class c ON c.oid = p.relid ORDER BY 2"):
        if r["reltuples"] >= 0:
            per_page = r["reltuples"] / r["relpages"] if r["relpages"] else 0
            estimate = (f"reltuples = {r['reltuples']:g}, relpages = {r['relpages']}: the row count at the last "
                        f"VACUUM or ANALYZE, exact when ANALYZE read every row (tables under {r['sample']} rows)")
            size = f"pg_relation_size() = {r['bytes']} bytes: the row count to within about {per_page:.0f} rows " \
                   "(the rows of a page), at any time"
        else:
            estimate = "reltuples is unknown (-1) until the first VACUUM or ANALYZE, then the row count"
            size = f"pg_relation_size() = {r['bytes']} bytes: the row count to within the rows of a page, at any time"
        out.append((r["relid"], "known limit: reltuples readable",
                    f"every role reads, for {r['name']}: {estimate}; {size}. Each moves with inserts and deletes",
                    None))
        if r["relkind"] == "f":
            out.append((r["relid"], "known limit: foreign table",
                        f"{r['name']} is a foreign table: writes on the remote server bump no data version, and the "
                        "executor's queries on it (the filters of analysts' questions) reach that server, under the "
                        "user mapping its owner chose", None))
    copies = db.execute("SELECT count(*) AS n FROM dp_internal.bounded_copies WHERE data_version <> -1")[0]["n"]
    out.append((None, "known limit: bounded copies in pg_class",
                f"every role sees dp_internal.bounded_* tables in pg_class ({copies} now): that, and when, someone "
                "asked the same GROUP BY columns twice of a protected table (not which table nor which columns: the "
                "names are keyed digests); pg_relation_size() of one is that table's rows after bounding, to within "
                "a page; reltuples stays -1 (pg_dp never analyses them, autovacuum is off) unless a database-wide "
                "ANALYZE or VACUUM runs", None))
    return out


def _executor_mode():
    """How requests are run (src/worker/): the pool and its limits, or one executor per session."""
    m = json.loads(db.execute("SELECT dp_internal.executor_mode() AS m")[0]["m"])
    limits = (f"pg_dp.role_concurrency = {m['role_concurrency']} questions of one role answered at once, "
              f"pg_dp.role_queue = {m['role_queue']} waiting, pg_dp.free_requests_per_second = "
              f"{m['free_requests_per_second']:g} free requests (dp.cost, dp.explain, refused questions)")
    if m["mode"] == "pool":
        return [(None, "executor pool",
                 f"{m['executors']} executors answer every session's questions and {m['synthesis_executors']} "
                 "run syntheses (pg_dp in shared_preload_libraries), about 100 MB each once warm; a role has "
                 f"at most {limits}; the queue serves the roles in turn", None)]
    return [(None, "executor per session",
             "pg_dp is not in shared_preload_libraries: each session that asks pg_dp starts a background worker of "
             "its own (about 100 MB and a max_worker_processes slot while the session lasts, "
             f"pg_dp.executor_spares = {m['executor_spares']} warm spare per database), so a role holds as many as "
             "it has sessions; the pool's per-role limits and fair queue do not apply",
             "ALTER SYSTEM SET shared_preload_libraries = 'pg_dp' (after citus, if it is there), then restart the "
             "server")]

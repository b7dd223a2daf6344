-- dp_synthesize in psql: the DBA's denial constraints, the analyst's dry run, and every
-- error message.  (Runs that write tables are tested in test/integration/test_synthesis.py: their
-- progress lines carry timings and their rows are random.)
\set SHOW_CONTEXT never
SET search_path = public, dp;

CREATE TABLE regress_people (id int PRIMARY KEY, zip text NOT NULL, city text NOT NULL,
                             age int NOT NULL CHECK (age >= 0), income int,
                             smoker boolean NOT NULL, born date);
INSERT INTO regress_people
SELECT g, 'z' || (g % 50), 'c' || (g % 50 / 5), 18 + g % 70, 1000 * (g % 90), g % 4 = 0,
       DATE '1950-01-01' + g % 20000
FROM generate_series(1, 2000) g;
SELECT dp.protect('regress_people', dataset => 'people');
SELECT dp.set_bounds('regress_people', 'age', 0, 120);
CREATE ROLE regress_synth_analyst;
SELECT dp.grant_budget('regress_synth_analyst', 'people', 2.0, 1e-5);

-- DBA: denial constraints (Kamino format)
SELECT dp.add_constraint('regress_people', 't1&t2&EQ(t1.zip,t2.zip)&IQ(t1.city,t2.city)');
SELECT dp.add_constraint('regress_people', 't1 & t2 & LT(t1.age,t2.age) & GT(t1.income,t2.income)');
SELECT dp.add_constraint('regress_people', 't1&t2&EQ(t1.city,t2.city)&LT(t1.age,t2.age)&LT(t1.born,t2.born)');
SELECT table_name, dc FROM dp.denial_constraints ORDER BY id;
SELECT dp.add_constraint('regress_people', 't1&t2&EQ(t1.zip,t2.nope)');
SELECT dp.add_constraint('regress_people', 't1&t2&SAME(t1.zip,t2.zip)');
SELECT dp.add_constraint('regress_people', 't1&t3&EQ(t1.zip,t3.zip)');
SELECT dp.add_constraint('regress_people', 't1&t2');
SELECT dp.add_constraint('pg_class', 't1&t2&EQ(t1.relname,t2.relname)&IQ(t1.relkind,t2.relkind)');
SELECT dp.drop_constraint(3);
SELECT dp.drop_constraint(3);

-- analyst: the plan and its cost, spending nothing
SET ROLE regress_synth_analyst;
CALL dp_synthesize('regress_people', epsilon => 0.5, dry_run => true);
SELECT dataset, epsilon_spent FROM dp.budgets;
-- analyst errors
CALL dp_synthesize('regress_people', epsilon => 5);
CALL dp_synthesize('regress_people', epsilon => -1);
CALL dp_synthesize('regress_people', epsilon => 1, delta => 1);
CALL dp_synthesize('regress_people', epsilon => 1, "rows" => 0);
CALL dp_synthesize('regress_people', epsilon => 1, target_schema => 'public');
CALL dp_synthesize('pg_class', epsilon => 1);
SELECT dp.add_constraint('regress_people', 't1&t2&EQ(t1.zip,t2.zip)&IQ(t1.age,t2.age)');
SELECT * FROM dp.evaluate_synthetic('regress_people');
RESET ROLE;
SELECT * FROM dp.evaluate_synthetic('regress_people');

DROP TABLE regress_people;
DROP OWNED BY regress_synth_analyst;
DROP ROLE regress_synth_analyst;

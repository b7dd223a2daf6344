-- Load UCI Adult (train split, as shipped with Kamino) into public.adult.
-- Run by scripts/demo.sh with :datafile set; empty CSV fields are NULL.
CREATE TABLE adult (
    age             integer NOT NULL,
    workclass       text,
    fnlwgt          integer NOT NULL,
    education       text NOT NULL,
    education_num   integer NOT NULL,
    marital_status  text NOT NULL,
    occupation      text,
    relationship    text NOT NULL,
    race            text NOT NULL,
    sex             text NOT NULL,
    capital_gain    integer NOT NULL,
    capital_loss    integer NOT NULL,
    hours_per_week  integer NOT NULL,
    native_country  text,
    income          text NOT NULL
);
\set copy '\\copy adult FROM ' :'datafile' ' WITH (FORMAT csv, HEADER true)'
:copy
ANALYZE adult;

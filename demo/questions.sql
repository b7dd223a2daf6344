-- What an analyst may ask of public.adult: every answer below is differentially
-- private (OpenDP noise, epsilon per aggregate as written); no raw row is shown.
SET search_path = public, dp;
\pset footer off
\echo
\echo '== How many people, how old, how much do they work? (epsilon 0.1 each)'
SELECT dp_count(1, 0.1)                        AS people,
       round(dp_avg(age, 17, 90, 0.1)::numeric, 1)        AS mean_age,
       round(dp_median(age, 17, 90, 0.1)::numeric, 1)     AS median_age,
       round(dp_stddev(age, 17, 90, 0.1)::numeric, 1)     AS sd_age,
       round(dp_avg(hours_per_week, 1, 99, 0.1)::numeric, 1) AS mean_hours
FROM adult;
\echo '== Income class by sex (epsilon 0.5 per aggregate)'
SELECT sex, income,
       dp_count(1, 0.5)                                    AS people,
       round(dp_avg(age, 17, 90, 0.5)::numeric, 1)         AS mean_age,
       round(dp_avg(hours_per_week, 1, 99, 0.5)::numeric, 1) AS mean_hours
FROM adult GROUP BY sex, income ORDER BY sex, income;
\echo '== Capital gains: total and quartiles, clamped to [0, 20000] (epsilon 0.5 each)'
SELECT dp_sum(capital_gain, 0, 20000, 0.5)              AS total_gain,
       round(dp_quantile(hours_per_week, 0.25, 1, 99, 0.5)::numeric) AS hours_p25,
       round(dp_quantile(hours_per_week, 0.75, 1, 99, 0.5)::numeric) AS hours_p75
FROM adult;
\echo '== Years of education by race (epsilon 1)'
SELECT race, dp_count(1, 1.0) AS people, round(dp_avg(education_num, 1, 16, 1.0)::numeric, 2) AS mean_education_years
FROM adult GROUP BY race ORDER BY race;
\echo '== Asking again draws fresh noise (the coming budget ledger charges every release):'
SELECT dp_count(1, 0.1) AS over_60 FROM adult WHERE age > 60;
SELECT dp_count(1, 0.1) AS over_60 FROM adult WHERE age > 60;

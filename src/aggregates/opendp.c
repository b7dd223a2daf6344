/*
 * opendp.c -- OpenDP's samplers and privacy maps, reached through its C ABI
 * (the library the OpenDP wheel ships, opendp.abi3.so), so that the final step
 * of the dp_* aggregates needs no Python in the caller's backend: importing the
 * Python engine there costs hundreds of milliseconds on a backend's first call.
 *
 * The same measurements the engine builds in Python (python_udfs/pg_dp/
 * mechanisms.py), with the same arguments, so the noise is the same:
 *   - discrete Laplace: make_laplace(vector_domain(atom_domain(i64)), l1_distance(i64), scale),
 *     drawn in batches of POOL_BATCH on a vector of zeros, each draw used once;
 *   - report noisy min: make_noisy_max(vector_domain(atom_domain(i64)),
 *     linf_distance(i64), max_divergence(), scale, negate = true);
 *   - scales calibrated with the measurements' own privacy maps (the smallest
 *     scale, from the map at scale 1 nudged up, whose map gives the budget).
 *
 * The library is the one the server's Python imports (its path is found when
 * pg_dp is built) and must be of the OpenDP version whose ABI this file calls
 * (0.16, as scripts/install-deps.sh pins it); otherwise, or when it cannot be
 * loaded, dp_opendp_available() is false and the aggregates call the engine's
 * release in Python instead (the same noise, slower on a backend's first call).
 * The library refers to Python's C API for features pg_dp does not use; the
 * Python library is loaded first (not initialised) to resolve them.
 */
#include "postgres.h"

#include <dirent.h>
#include <dlfcn.h>
#include <math.h>

#include "utils/memutils.h"

#include "aggregates/opendp.h"

#ifndef PG_DP_OPENDP_LIBRARY
#define PG_DP_OPENDP_LIBRARY ""
#endif
#ifndef PG_DP_PYTHON_LIBRARY
#define PG_DP_PYTHON_LIBRARY ""
#endif

#define OPENDP_VERSION_PREFIX	"opendp-0.16."
#define POOL_BATCH		256
#define CACHE_SIZE		64
#define MAX_SCALE		72057594037927936.0	/* 2^56: mechanisms.MAX_SCALE */

/* The ABI's types (opendp/_lib.py) */
typedef struct FfiSlice
{
	const void *ptr;
	size_t		len;
} FfiSlice;

typedef struct FfiError
{
	char	   *variant;
	char	   *message;
	char	   *backtrace;
} FfiError;

typedef struct FfiResult
{
	uint32		tag;			/* 0: ok */
	union
	{
		void	   *ok;
		FfiError   *err;
	}			payload;
} FfiResult;

typedef FfiResult (*atom_domain_fn) (void *bounds, void *nan, const char *T);
typedef FfiResult (*vector_domain_fn) (void *atom, void *size);
typedef FfiResult (*metric_fn) (const char *T);
typedef FfiResult (*linf_fn) (bool monotonic, const char *T);
typedef FfiResult (*measure_fn) (void);
typedef FfiResult (*laplace_fn) (void *domain, void *metric, double scale, void *k, const char *MO);
typedef FfiResult (*noisy_max_fn) (void *domain, void *metric, void *measure, double scale, bool negate);
typedef FfiResult (*two_fn) (void *a, void *b);
typedef FfiResult (*slice_as_object_fn) (const FfiSlice *slice, const char *T);
typedef FfiResult (*one_fn) (void *a);

static struct
{
	atom_domain_fn atom_domain;
	vector_domain_fn vector_domain;
	metric_fn l1_distance;
	linf_fn linf_distance;
	measure_fn max_divergence;
	laplace_fn make_laplace;
	noisy_max_fn make_noisy_max;
	two_fn measurement_map;
	two_fn measurement_invoke;
	slice_as_object_fn slice_as_object;
	one_fn object_as_slice;
	one_fn object_free;
	one_fn slice_free;
	one_fn error_free;
	one_fn domain_free;
	one_fn metric_free;
	one_fn measure_free;
	one_fn measurement_free;
}			lib;

static int	loaded = 0;			/* 0: not tried, 1: usable, -1: not usable */

/* A measurement at one scale, and (Laplace) its batch of draws not used yet. */
typedef struct Mechanism
{
	double		scale;
	void	   *measurement;
	int64	   *draws;
	int			left;
} Mechanism;

/* A calibrated scale: (kind, sensitivity, budget) -> scale */
typedef struct Calibration
{
	int			kind;
	int64		sensitivity;
	double		budget;
	double		scale;
} Calibration;

#define KIND_LAPLACE	0
#define KIND_NOISY_MIN	1

static Mechanism mechanisms[2][CACHE_SIZE];
static int	mechanisms_next[2];
static Calibration calibrations[CACHE_SIZE];
static int	calibrations_next;

/* Is the library beside a dist-info of the version this file calls? */
static bool
version_matches(const char *library)
{
	char		site[MAXPGPATH];
	char	   *slash;
	DIR		   *dir;
	struct dirent *de;
	bool		found = false;

	strlcpy(site, library, sizeof(site));
	for (int i = 0; i < 2; i++)
	{
		slash = strrchr(site, '/');
		if (slash == NULL)
			return false;
		*slash = '\0';			/* .../opendp/lib/x.so -> .../opendp -> site-packages */
	}
	slash = strrchr(site, '/');
	if (slash == NULL)
		return false;
	*slash = '\0';
	dir = opendir(site);
	if (dir == NULL)
		return false;
	while (!found && (de = readdir(dir)) != NULL)
		found = strncmp(de->d_name, OPENDP_VERSION_PREFIX, strlen(OPENDP_VERSION_PREFIX)) == 0 &&
			strstr(de->d_name, ".dist-info") != NULL;
	closedir(dir);
	return found;
}

static bool
load(void)
{
	void	   *handle;

	if (loaded != 0)
		return loaded > 0;
	loaded = -1;
	if (PG_DP_OPENDP_LIBRARY[0] == '\0' || PG_DP_PYTHON_LIBRARY[0] == '\0' ||
		!version_matches(PG_DP_OPENDP_LIBRARY))
		return false;
	if (dlopen(PG_DP_PYTHON_LIBRARY, RTLD_NOW | RTLD_GLOBAL) == NULL)
		return false;
	handle = dlopen(PG_DP_OPENDP_LIBRARY, RTLD_NOW | RTLD_LOCAL);
	if (handle == NULL)
	{
		elog(DEBUG1, "pg_dp: OpenDP's library could not be loaded: %s", dlerror());
		return false;
	}
#define RESOLVE(field, symbol) \
	if ((*(void **) &lib.field = dlsym(handle, symbol)) == NULL) \
		return false
	RESOLVE(atom_domain, "opendp_domains__atom_domain");
	RESOLVE(vector_domain, "opendp_domains__vector_domain");
	RESOLVE(l1_distance, "opendp_metrics__l1_distance");
	RESOLVE(linf_distance, "opendp_metrics__linf_distance");
	RESOLVE(max_divergence, "opendp_measures__max_divergence");
	RESOLVE(make_laplace, "opendp_measurements__make_laplace");
	RESOLVE(make_noisy_max, "opendp_measurements__make_noisy_max");
	RESOLVE(measurement_map, "opendp_core__measurement_map");
	RESOLVE(measurement_invoke, "opendp_core__measurement_invoke");
	RESOLVE(slice_as_object, "opendp_data__slice_as_object");
	RESOLVE(object_as_slice, "opendp_data__object_as_slice");
	RESOLVE(object_free, "opendp_data__object_free");
	RESOLVE(slice_free, "opendp_data__slice_free");
	RESOLVE(error_free, "opendp_core___error_free");
	RESOLVE(domain_free, "opendp_domains___domain_free");
	RESOLVE(metric_free, "opendp_metrics___metric_free");
	RESOLVE(measure_free, "opendp_measures___measure_free");
	RESOLVE(measurement_free, "opendp_core___measurement_free");
#undef RESOLVE
	loaded = 1;
	return true;
}

bool
dp_opendp_available(void)
{
	return load();
}

/* The value of a result, or an ERROR with OpenDP's message. */
static void *
ok(FfiResult result, const char *what)
{
	char		message[512];

	if (result.tag == 0)
		return result.payload.ok;
	snprintf(message, sizeof(message), "%s", result.payload.err && result.payload.err->message
			 ? result.payload.err->message : "?");
	if (result.payload.err)
		(void) lib.error_free(result.payload.err);
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("pg_dp: OpenDP failed in %s", what),
			 errdetail_internal("%s", message)));
	return NULL;				/* keep compiler quiet */
}

static void *
vector_i64_domain(void)
{
	void	   *atom = ok(lib.atom_domain(NULL, NULL, "i64"), "atom_domain");
	void	   *vector = ok(lib.vector_domain(atom, NULL), "vector_domain");

	(void) lib.domain_free(atom);
	return vector;
}

static void *
build(int kind, double scale)
{
	void	   *domain = vector_i64_domain();
	void	   *measurement;

	if (kind == KIND_LAPLACE)
	{
		void	   *metric = ok(lib.l1_distance("i64"), "l1_distance");

		measurement = ok(lib.make_laplace(domain, metric, scale, NULL, "MaxDivergence"), "make_laplace");
		(void) lib.metric_free(metric);
	}
	else
	{
		void	   *metric = ok(lib.linf_distance(false, "i64"), "linf_distance");
		void	   *measure = ok(lib.max_divergence(), "max_divergence");

		measurement = ok(lib.make_noisy_max(domain, metric, measure, scale, true), "make_noisy_max");
		(void) lib.metric_free(metric);
		(void) lib.measure_free(measure);
	}
	(void) lib.domain_free(domain);
	return measurement;
}

/* The measurement of this kind and scale, built once. */
static Mechanism *
mechanism(int kind, double scale)
{
	Mechanism  *m;

	for (int i = 0; i < CACHE_SIZE; i++)
		if (mechanisms[kind][i].measurement != NULL && mechanisms[kind][i].scale == scale)
			return &mechanisms[kind][i];
	m = &mechanisms[kind][mechanisms_next[kind]];
	mechanisms_next[kind] = (mechanisms_next[kind] + 1) % CACHE_SIZE;
	if (m->measurement != NULL)
	{
		/* evicted: its unused draws are dropped, never shown */
		(void) lib.measurement_free(m->measurement);
		m->measurement = NULL;
		if (m->draws != NULL)
			memset(m->draws, 0, sizeof(int64) * POOL_BATCH);
		m->left = 0;
	}
	m->measurement = build(kind, scale);
	m->scale = scale;
	return m;
}

/* The privacy loss of a measurement for a distance (its map). */
static double
privacy_map(void *measurement, int64 d_in)
{
	FfiSlice	slice = {&d_in, 1};
	void	   *distance = ok(lib.slice_as_object(&slice, "i64"), "slice_as_object");
	FfiResult	result = lib.measurement_map(measurement, distance);
	void	   *loss;
	FfiSlice   *out;
	double		value;

	(void) lib.object_free(distance);
	loss = ok(result, "measurement_map");
	out = ok(lib.object_as_slice(loss), "object_as_slice");
	value = *(const double *) out->ptr;
	(void) lib.slice_free(out);
	(void) lib.object_free(loss);
	return value;
}

/*
 * The smallest scale whose map gives at most `budget` for a distance of
 * `sensitivity` (mechanisms._calibrate, power 1): the first guess from the map
 * at scale 1, nudged up until OpenDP's own map agrees.
 */
static double
calibrate(int kind, int64 sensitivity, double budget)
{
	Calibration *c;
	void	   *measurement;
	volatile double first = 0;
	double		scale;
	bool		found = false;

	for (int i = 0; i < CACHE_SIZE; i++)
		if (calibrations[i].kind == kind && calibrations[i].sensitivity == sensitivity &&
			calibrations[i].budget == budget && calibrations[i].scale > 0)
			return calibrations[i].scale;
	measurement = build(kind, 1.0);
	PG_TRY();
	{
		first = privacy_map(measurement, sensitivity) / budget;
	}
	PG_FINALLY();
	{
		(void) lib.measurement_free(measurement);
	}
	PG_END_TRY();
	scale = first;
	if (scale > MAX_SCALE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("epsilon is too small for these bounds"),
				 errhint("Use a larger epsilon or narrower bounds.")));
	for (int i = 0; i < 64 && !found; i++)
	{
		Mechanism  *m = mechanism(kind, scale);

		if (privacy_map(m->measurement, sensitivity) <= budget)
			found = true;
		else
			scale = nextafter(scale, INFINITY) * (1 + 1e-15);
	}
	if (!found)
		elog(ERROR, "pg_dp: could not calibrate a noise scale");
	c = &calibrations[calibrations_next];
	calibrations_next = (calibrations_next + 1) % CACHE_SIZE;
	c->kind = kind;
	c->sensitivity = sensitivity;
	c->budget = budget;
	c->scale = scale;
	return scale;
}

double
dp_opendp_laplace_scale(int64 sensitivity, double epsilon)
{
	return calibrate(KIND_LAPLACE, sensitivity, epsilon);
}

double
dp_opendp_noisy_min_scale(int64 sensitivity, double epsilon)
{
	return calibrate(KIND_NOISY_MIN, sensitivity, epsilon);
}

/* OpenDP's measurement run on a vector of i64: its output's slice (freed by the caller). */
static void *
invoke(void *measurement, const int64 *values, size_t n, FfiSlice **out)
{
	FfiSlice	slice = {values, n};
	void	   *arg = ok(lib.slice_as_object(&slice, "Vec<i64>"), "slice_as_object");
	FfiResult	result = lib.measurement_invoke(measurement, arg);
	void	   *answer;

	(void) lib.object_free(arg);
	answer = ok(result, "measurement_invoke");
	*out = ok(lib.object_as_slice(answer), "object_as_slice");
	return answer;
}

int64
dp_opendp_laplace_draw(double scale)
{
	Mechanism  *m = mechanism(KIND_LAPLACE, scale);

	if (m->left == 0)
	{
		int64	   *zeros = palloc0(sizeof(int64) * POOL_BATCH);
		FfiSlice   *out;
		void	   *answer = invoke(m->measurement, zeros, POOL_BATCH, &out);

		if (out->len != POOL_BATCH)
			elog(ERROR, "pg_dp: OpenDP returned %zu draws, not %d", out->len, POOL_BATCH);
		if (m->draws == NULL)
			m->draws = MemoryContextAlloc(TopMemoryContext, sizeof(int64) * POOL_BATCH);
		memcpy(m->draws, out->ptr, sizeof(int64) * POOL_BATCH);
		m->left = POOL_BATCH;
		(void) lib.slice_free(out);
		(void) lib.object_free(answer);
		pfree(zeros);
	}
	/* each draw is used once, then forgotten */
	m->left--;
	{
		int64		draw = m->draws[m->left];

		m->draws[m->left] = 0;
		return draw;
	}
}

size_t
dp_opendp_noisy_argmin(const int64 *scores, size_t n, double scale)
{
	Mechanism  *m = mechanism(KIND_NOISY_MIN, scale);
	FfiSlice   *out;
	void	   *answer = invoke(m->measurement, scores, n, &out);
	size_t		index = *(const size_t *) out->ptr;

	(void) lib.slice_free(out);
	(void) lib.object_free(answer);
	return index;
}

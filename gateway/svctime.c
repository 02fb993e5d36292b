/* svctime.c - see svctime.h. */
#include "svctime.h"

#include <string.h>

int svc_bucket(int rows)
{
	int b = 0;

	while (b < SVC_BUCKETS - 1 && (1 << b) < rows)
		b++;
	return b;
}

void svc_init(struct svc_model *s, double a_ns, double b_ns, double alpha)
{
	memset(s, 0, sizeof(*s));
	s->a_ns = a_ns > 0 ? a_ns : 0;
	s->b_ns = b_ns > 0 ? b_ns : 0;
	s->alpha = alpha > 0 && alpha <= 1 ? alpha : 0.2;
}

void svc_observe(struct svc_model *s, int rows, uint64_t exec_ns)
{
	int b = svc_bucket(rows);

	if (s->seen[b] == 0)
		s->ewma[b] = (double)exec_ns;
	else
		s->ewma[b] += s->alpha * ((double)exec_ns - s->ewma[b]);
	if (s->seen[b] < UINT32_MAX)
		s->seen[b]++;
}

/* Fit t = a + b*n through the seen buckets (n = bucket size). */
static int svc_fit(const struct svc_model *s, double *a, double *b)
{
	double sx = 0, sy = 0, sxx = 0, sxy = 0;
	int k = 0;

	for (int i = 0; i < SVC_BUCKETS; i++) {
		double x = (double)(1 << i);

		if (!s->seen[i])
			continue;
		sx += x;
		sy += s->ewma[i];
		sxx += x * x;
		sxy += x * s->ewma[i];
		k++;
	}
	if (k < 2 || k * sxx - sx * sx <= 0)
		return k;
	*b = (k * sxy - sx * sy) / (k * sxx - sx * sx);
	*a = (sy - *b * sx) / k;
	if (*b < 0) {		/* noise: flat line through the mean */
		*b = 0;
		*a = sy / k;
	}
	return k;
}

uint64_t svc_predict(const struct svc_model *s, int rows)
{
	int b = svc_bucket(rows);
	double n = (double)(1 << b), a = s->a_ns, slope = s->b_ns, t = a + slope * n;

	if (s->seen[b])
		t = s->ewma[b];
	else if (svc_fit(s, &a, &slope) == 1) {
		/* One bucket seen: keep the warm start's shape, scale to it. */
		for (int i = 0; i < SVC_BUCKETS; i++)
			if (s->seen[i]) {
				double warm = s->a_ns + s->b_ns * (double)(1 << i);

				t = s->a_ns + s->b_ns * n;
				t = warm > 0 ? t * s->ewma[i] / warm : s->ewma[i];
				break;
			}
	} else {
		t = a + slope * n;
	}
	return t < 1 ? 1 : (uint64_t)t;
}

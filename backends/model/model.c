/*
 * model.c - load a model directory: model.yaml + safetensors weights.
 *
 * model.yaml (documented for operators in docs/model-format.md):
 *
 *   name: digits                # optional; default: the directory's name
 *   platform: infergw-mlp       # optional; the only platform there is
 *   version: 1                  # optional integer >= 1; default 1
 *   max_batch_size: 64          # optional, 1..4096; rows per execution; default 64
 *   weights: model.safetensors  # optional; relative to the directory, or absolute
 *   description: "..."          # optional free text
 *   inputs:                     # exactly one: FP32, shape [-1, D]
 *     - {name: input, datatype: FP32, shape: [-1, 64]}
 *   outputs:                    # exactly one: FP32, shape [-1, D]
 *     - {name: probabilities, datatype: FP32, shape: [-1, 10],
 *        labels: ['0', '1', ...]}  # optional: D class names (classification)
 *   layers:                     # applied in order, at least one
 *     - {type: dense, weight: fc1.weight, bias: fc1.bias, activation: relu}
 *     - {type: dense, weight: fc2.weight}        # bias optional, activation none
 *     - {type: softmax}                          # over the row; width-preserving
 *
 * A dense layer's weight is an F32 tensor [out, in] (nn.Linear's layout), its
 * bias an F32 tensor [out]; activation is none (default) or relu.  The chain
 * must start at the input width and end at the output width; each layer's
 * "in" must equal the previous layer's "out".  Unknown keys are errors.
 *
 * Every message names model.yaml with line:column of the offending node and
 * its path (layers[1].weight), and the tensor when one is involved.
 */
#define _GNU_SOURCE
#include "model/model.h"
#include "model/ytree.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_MAX_WIDTH	(1 << 24)
#define MODEL_MAX_BATCH	4096

static const char *const model_keys[] = {
	"name", "platform", "version", "max_batch_size", "weights", "description",
	"inputs", "outputs", "layers", "variant", "variant_of", NULL,
};
static const char *const in_keys[] = { "name", "datatype", "shape", NULL };
static const char *const out_keys[] = { "name", "datatype", "shape", "labels", NULL };

#define MODEL_MAX_LABEL 256	/* bytes per class label */
static const char *const dense_keys[] = { "type", "weight", "bias", "activation", NULL };
static const char *const dense_q8_keys[] = {
	"type", "weight", "bias", "activation", "weight_scale", "input_scale", NULL,
};
static const char *const softmax_keys[] = { "type", NULL };

void model_free(struct model *m)
{
	if (!m)
		return;
	free(m->name);
	free(m->dir);
	free(m->platform);
	free(m->input.name);
	free(m->output.name);
	for (int i = 0; m->labels && i < m->out_dim; i++)
		free(m->labels[i]);
	free(m->labels);
	free(m->layers);
	free(m->variant_of);
	free(m->description);
	st_close(m->weights);
	free(m);
}

/* "[10, 32]" into buf. */
static const char *model_dims_str(const int64_t *dims, int ndim, char *buf, size_t len)
{
	size_t off = 0;
	int i;

	off += snprintf(buf, len, "[");
	for (i = 0; i < ndim && off < len; i++)
		off += snprintf(buf + off, len - off, "%s%lld", i ? ", " : "", (long long)dims[i]);
	if (off < len)
		snprintf(buf + off, len - off, "]");
	return buf;
}

/* The safetensors spelling of t, for messages. */
static const char *model_st_name(enum dtype t)
{
	static const char *const names[] = {
		"BOOL", "U8", "U16", "U32", "U64", "I8", "I16", "I32", "I64",
		"F16", "F32", "F64",
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (dtype_from_safetensors(names[i]) == t)
			return names[i];
	return "?";
}

/* One entry of inputs/outputs: {name, datatype: FP32, shape: [-1, D]}. */
static int model_io(struct ytree *t, yaml_node_t *list, const char *what,
		    const char *const *keys, struct tensor_spec *spec, int *dim, char **err)
{
	yaml_node_t *e, *n, *shape;
	char path[64], *s = NULL;
	int64_t v;
	int rc;

	if (!list)
		return yt_error(t, yt_root(t), what, err, "missing (exactly one entry required)");
	if ((rc = yt_expect_seq(t, list, what, err)))
		return rc;
	if (yt_seq_len(list) != 1)
		return yt_error(t, list, what, err, "expected exactly one entry, got %d",
				yt_seq_len(list));
	e = yt_seq_at(t, list, 0);
	snprintf(path, sizeof(path), "%s[0]", what);
	if ((rc = yt_check_keys(t, e, path, keys, err)))
		return rc;

	snprintf(path, sizeof(path), "%s[0].name", what);
	n = yt_get(t, e, "name");
	if (!n)
		return yt_error(t, e, path, err, "missing");
	if ((rc = yt_str(t, n, path, &spec->name, err)))
		return rc;
	if (!spec->name[0])
		return yt_error(t, n, path, err, "must not be empty");

	snprintf(path, sizeof(path), "%s[0].datatype", what);
	n = yt_get(t, e, "datatype");
	if (!n)
		return yt_error(t, e, path, err, "missing (FP32)");
	if ((rc = yt_str(t, n, path, &s, err)))
		return rc;
	spec->dtype = dtype_from_kserve(s);
	if (spec->dtype != DT_FP32) {
		rc = yt_error(t, n, path, err, "datatype \"%s\" not supported (FP32 only)", s);
		free(s);
		return rc;
	}
	free(s);

	snprintf(path, sizeof(path), "%s[0].shape", what);
	shape = yt_get(t, e, "shape");
	if (!shape)
		return yt_error(t, e, path, err, "missing ([-1, D])");
	if ((rc = yt_expect_seq(t, shape, path, err)))
		return rc;
	if (yt_seq_len(shape) != 2)
		return yt_error(t, shape, path, err, "expected [-1, D], got %d dimensions",
				yt_seq_len(shape));
	snprintf(path, sizeof(path), "%s[0].shape[0]", what);
	if ((rc = yt_int(t, yt_seq_at(t, shape, 0), path, -1, -1, &v, err)))
		return rc;
	snprintf(path, sizeof(path), "%s[0].shape[1]", what);
	if ((rc = yt_int(t, yt_seq_at(t, shape, 1), path, 1, MODEL_MAX_WIDTH, &v, err)))
		return rc;
	spec->ndim = 2;
	spec->dims[0] = -1;
	spec->dims[1] = v;
	*dim = (int)v;
	return 0;
}

/*
 * outputs[0].labels: optional, one string per output class (out_dim of
 * them, at most MODEL_MAX_LABEL bytes each): the classification
 * extension answers "score:index:label" with them.
 */
static int model_labels(struct ytree *t, struct model *m, yaml_node_t *outputs, char **err)
{
	yaml_node_t *list = yt_get(t, yt_seq_at(t, outputs, 0), "labels");
	char path[64];
	int rc, n;

	if (!list)
		return 0;
	if ((rc = yt_expect_seq(t, list, "outputs[0].labels", err)))
		return rc;
	n = yt_seq_len(list);
	if (n != m->out_dim)
		return yt_error(t, list, "outputs[0].labels", err, "expected %d labels (one per "
				"class of shape [-1, %d]), got %d", m->out_dim, m->out_dim, n);
	m->labels = calloc((size_t)n, sizeof(*m->labels));
	if (!m->labels)
		return yt_error(t, list, "outputs[0].labels", err, "out of memory");
	for (int i = 0; i < n; i++) {
		yaml_node_t *e = yt_seq_at(t, list, i);

		snprintf(path, sizeof(path), "outputs[0].labels[%d]", i);
		if ((rc = yt_str(t, e, path, &m->labels[i], err)))
			return rc;
		if (!m->labels[i])
			return yt_error(t, e, path, err, "out of memory");
		if (strlen(m->labels[i]) > MODEL_MAX_LABEL)
			return yt_error(t, e, path, err, "longer than %d bytes", MODEL_MAX_LABEL);
	}
	return 0;
}

/*
 * model_tensor - look up the tensor named by node n (a string) and check
 * dtype dt and shape; want[i] < 0 means "any size" for dimension i.
 */
static int model_tensor(struct ytree *t, struct model *m, yaml_node_t *n, const char *path,
			enum dtype dt, int ndim, const int64_t *want, const struct st_tensor **out,
			char **err)
{
	const struct st_tensor *st;
	char *name = NULL, got[96], exp[96];
	int64_t ex[MODEL_MAX_DIMS];
	bool ok;
	int i, rc;

	if ((rc = yt_str(t, n, path, &name, err)))
		return rc;
	st = st_find(m->weights, name);
	if (!st) {
		rc = yt_error(t, n, path, err, "tensor %s not found in %s", name,
			      m->weights->path);
		goto out;
	}
	if (st->dtype != dt) {
		rc = yt_error(t, n, path, err, "tensor %s has dtype %s, expected %s", name,
			      model_st_name(st->dtype), model_st_name(dt));
		goto out;
	}
	ok = st->ndim == ndim;
	for (i = 0; i < ndim; i++) {
		ex[i] = want[i] >= 0 ? want[i] : (i < st->ndim ? st->dims[i] : 1);
		if (ok && st->dims[i] != ex[i])
			ok = false;
	}
	if (!ok) {
		rc = yt_error(t, n, path, err, "tensor %s has shape %s, expected %s", name,
			      model_dims_str(st->dims, st->ndim, got, sizeof(got)),
			      model_dims_str(ex, ndim, exp, sizeof(exp)));
		goto out;
	}
	for (i = 0; i < ndim; i++) {
		if (st->dims[i] < 1 || st->dims[i] > MODEL_MAX_WIDTH) {
			rc = yt_error(t, n, path, err, "tensor %s has shape %s: widths must be in [1, %d]",
				      name, model_dims_str(st->dims, st->ndim, got, sizeof(got)),
				      MODEL_MAX_WIDTH);
			goto out;
		}
	}
	*out = st;
out:
	free(name);
	return rc;
}

/*
 * An INT8 dense layer's weight_scale (F32 [out], every value finite and
 * > 0: a zero or NaN scale would silently zero or poison a channel) and
 * optional input_scale (a number > 0: the calibrated static scale).
 */
static int model_q8_layer(struct ytree *t, struct model *m, yaml_node_t *e, int i,
			  struct layer *l, char **err)
{
	const struct st_tensor *s;
	yaml_node_t *n;
	char path[64];
	int64_t want[1] = { l->out };
	double v;
	int rc, k;

	snprintf(path, sizeof(path), "layers[%d].weight_scale", i);
	n = yt_get(t, e, "weight_scale");
	if (!n)
		return yt_error(t, e, path, err, "missing (an F32 tensor [%d] of per-channel "
				"scales; required when variant is int8)", l->out);
	if ((rc = model_tensor(t, m, n, path, DT_FP32, 1, want, &s, err)))
		return rc;
	l->wscale = s->data;
	for (k = 0; k < l->out; k++)
		if (!isfinite(l->wscale[k]) || l->wscale[k] <= 0)
			return yt_error(t, n, path, err, "tensor %s: scale[%d] is %g, must be "
					"finite and > 0", s->name, k, (double)l->wscale[k]);
	snprintf(path, sizeof(path), "layers[%d].input_scale", i);
	n = yt_get(t, e, "input_scale");
	l->in_scale = 0;
	if (n) {
		if ((rc = yt_num(t, n, path, 0, 3.0e38, &v, err)))
			return rc;
		if (!(v > 0) || !isfinite((float)v) || (float)v <= 0)
			return yt_error(t, n, path, err, "must be a finite number > 0, got %g", v);
		l->in_scale = (float)v;
	}
	return 0;
}

static int model_layers(struct ytree *t, struct model *m, yaml_node_t *list, char **err)
{
	int i, n, last_dense = -1, cur = m->in_dim;
	char path[64];
	int rc;

	if (!list)
		return yt_error(t, yt_root(t), "layers", err, "missing (at least one layer required)");
	if ((rc = yt_expect_seq(t, list, "layers", err)))
		return rc;
	n = yt_seq_len(list);
	if (n < 1)
		return yt_error(t, list, "layers", err, "at least one layer required");
	m->layers = calloc((size_t)n, sizeof(*m->layers));
	if (!m->layers)
		return yt_error(t, list, "layers", err, "out of memory");

	/* The last dense layer must produce the output width (softmax keeps it). */
	for (i = 0; i < n; i++) {
		const char *ty;
		yaml_node_t *tn = yt_get(t, yt_seq_at(t, list, i), "type");

		ty = tn && tn->type == YAML_SCALAR_NODE ? (const char *)tn->data.scalar.value : "";
		if (strcmp(ty, "dense") == 0)
			last_dense = i;
	}

	m->max_width = m->in_dim;
	for (i = 0; i < n; i++) {
		yaml_node_t *e = yt_seq_at(t, list, i), *tn, *an, *wn, *bn;
		struct layer *l = &m->layers[i];
		const struct st_tensor *w, *b;
		char *ty = NULL, *act = NULL;
		int64_t want[2];

		snprintf(path, sizeof(path), "layers[%d]", i);
		if ((rc = yt_expect_map(t, e, path, err)))
			return rc;
		snprintf(path, sizeof(path), "layers[%d].type", i);
		tn = yt_get(t, e, "type");
		if (!tn)
			return yt_error(t, e, path, err, "missing (dense or softmax)");
		if ((rc = yt_str(t, tn, path, &ty, err)))
			return rc;
		if (strcmp(ty, "softmax") == 0) {
			free(ty);
			snprintf(path, sizeof(path), "layers[%d]", i);
			if ((rc = yt_check_keys(t, e, path, softmax_keys, err)))
				return rc;
			l->kind = LAYER_SOFTMAX;
			l->act = ACT_NONE;
			l->in = l->out = cur;
			m->n_layers++;
			continue;
		}
		if (strcmp(ty, "dense") != 0) {
			rc = yt_error(t, tn, path, err, "unknown layer type \"%s\" (dense or softmax)", ty);
			free(ty);
			return rc;
		}
		free(ty);
		snprintf(path, sizeof(path), "layers[%d]", i);
		if ((rc = yt_check_keys(t, e, path, m->variant == VARIANT_INT8 ? dense_q8_keys
								       : dense_keys, err)))
			return rc;
		l->kind = LAYER_DENSE;

		snprintf(path, sizeof(path), "layers[%d].activation", i);
		an = yt_get(t, e, "activation");
		l->act = ACT_NONE;
		if (an) {
			if ((rc = yt_str(t, an, path, &act, err)))
				return rc;
			if (strcmp(act, "relu") == 0) {
				l->act = ACT_RELU;
			} else if (strcmp(act, "none") != 0) {
				rc = yt_error(t, an, path, err, "unknown activation \"%s\" (none or relu)", act);
				free(act);
				return rc;
			}
			free(act);
		}

		snprintf(path, sizeof(path), "layers[%d].weight", i);
		wn = yt_get(t, e, "weight");
		if (!wn)
			return yt_error(t, e, path, err, "missing (a tensor name)");
		want[0] = i == last_dense ? m->out_dim : -1;
		want[1] = cur;
		if ((rc = model_tensor(t, m, wn, path, m->variant == VARIANT_INT8 ? DT_INT8 : DT_FP32,
				       2, want, &w, err)))
			return rc;
		l->in = cur;
		l->out = (int)w->dims[0];
		if (m->variant == VARIANT_INT8) {
			l->qweight = w->data;
			if ((rc = model_q8_layer(t, m, e, i, l, err)))
				return rc;
		} else {
			l->weight = w->data;
		}

		bn = yt_get(t, e, "bias");
		if (bn) {
			snprintf(path, sizeof(path), "layers[%d].bias", i);
			want[0] = l->out;
			if ((rc = model_tensor(t, m, bn, path, DT_FP32, 1, want, &b, err)))
				return rc;
			l->bias = b->data;
		}
		cur = l->out;
		if (cur > m->max_width)
			m->max_width = cur;
		m->flops_per_row += 2.0 * l->in * l->out;
		m->n_layers++;
	}
	if (cur != m->out_dim)
		return yt_error(t, list, "layers", err,
				"chain ends with width %d, but outputs[0] has shape [-1, %d]",
				cur, m->out_dim);
	if (m->out_dim > m->max_width)
		m->max_width = m->out_dim;
	return 0;
}

/* An optional string key; *out stays as is when absent. */
static int model_opt_str(struct ytree *t, yaml_node_t *root, const char *key, char **out,
			 char **err)
{
	yaml_node_t *n = yt_get(t, root, key);
	char *s = NULL;
	int rc;

	if (!n)
		return 0;
	if ((rc = yt_str(t, n, key, &s, err)))
		return rc;
	if (!s[0]) {
		free(s);
		return yt_error(t, n, key, err, "must not be empty");
	}
	free(*out);
	*out = s;
	return 0;
}

/*
 * model_load - see model.h.  The returned model's layers point into
 * m->weights, which the model owns; model_free releases both.
 */
struct model *model_load(const char *dir, char **err)
{
	struct ytree t;
	struct model *m;
	yaml_node_t *root, *n;
	char *yaml_path = NULL, *wname = NULL, *wpath = NULL, *serr = NULL, *variant = NULL;
	const char *base;
	int64_t v;
	int rc;

	m = calloc(1, sizeof(*m));
	yaml_path = yt_strdupf("%s/model.yaml", dir);
	if (!m || !yaml_path) {
		*err = yt_strdupf("%s: out of memory", dir);
		free(m);
		free(yaml_path);
		return NULL;
	}
	if (yt_load(&t, yaml_path, err))
		goto out_free_tree;
	root = yt_root(&t);
	if (!root) {
		yt_error(&t, NULL, "model", err, "empty document");
		goto out_free_tree;
	}
	if (yt_check_keys(&t, root, "model", model_keys, err))
		goto out_free_tree;

	m->dir = strdup(dir);
	if (m->dir) {	/* default name: the last path component, "a/b/" -> "b" */
		size_t len = strlen(m->dir);

		while (len > 1 && m->dir[len - 1] == '/')
			len--;
		base = memrchr(m->dir, '/', len - (len > 0));
		base = base ? base + 1 : m->dir;
		m->name = strndup(base, len - (size_t)(base - m->dir));
	}
	m->platform = strdup("infergw-mlp");
	wname = strdup("model.safetensors");
	if (!m->dir || !m->name || !m->platform || !wname) {
		yt_error(&t, root, "model", err, "out of memory");
		goto out_free_tree;
	}
	if (model_opt_str(&t, root, "name", &m->name, err) ||
	    model_opt_str(&t, root, "platform", &m->platform, err) ||
	    model_opt_str(&t, root, "weights", &wname, err) ||
	    model_opt_str(&t, root, "description", &m->description, err) ||
	    model_opt_str(&t, root, "variant", &variant, err) ||
	    model_opt_str(&t, root, "variant_of", &m->variant_of, err))
		goto out_free_tree;
	if (variant && strcmp(variant, "int8") == 0) {
		m->variant = VARIANT_INT8;
	} else if (variant && strcmp(variant, "fp32") != 0) {
		yt_error(&t, yt_get(&t, root, "variant"), "variant", err,
			 "unknown variant \"%s\" (fp32 or int8)", variant);
		goto out_free_tree;
	}
	if (strcmp(m->platform, "infergw-mlp") != 0) {
		yt_error(&t, yt_get(&t, root, "platform"), "platform", err,
			 "unknown platform \"%s\" (infergw-mlp)", m->platform);
		goto out_free_tree;
	}
	m->version = 1;
	if ((n = yt_get(&t, root, "version"))) {
		if (yt_int(&t, n, "version", 1, INT_MAX, &v, err))
			goto out_free_tree;
		m->version = (int)v;
	}
	m->max_batch_size = 64;
	if ((n = yt_get(&t, root, "max_batch_size"))) {
		if (yt_int(&t, n, "max_batch_size", 1, MODEL_MAX_BATCH, &v, err))
			goto out_free_tree;
		m->max_batch_size = (int)v;
	}
	if (model_io(&t, yt_get(&t, root, "inputs"), "inputs", in_keys, &m->input, &m->in_dim,
		     err) ||
	    model_io(&t, yt_get(&t, root, "outputs"), "outputs", out_keys, &m->output,
		     &m->out_dim, err) ||
	    model_labels(&t, m, yt_get(&t, root, "outputs"), err))
		goto out_free_tree;

	wpath = wname[0] == '/' ? strdup(wname) : yt_strdupf("%s/%s", dir, wname);
	if (!wpath) {
		yt_error(&t, root, "weights", err, "out of memory");
		goto out_free_tree;
	}
	m->weights = st_open(wpath, &serr);
	if (!m->weights) {
		n = yt_get(&t, root, "weights");
		yt_error(&t, n ? n : root, "weights", err, "%s", serr);
		free(serr);
		goto out_free_tree;
	}
	rc = model_layers(&t, m, yt_get(&t, root, "layers"), err);
	if (rc)
		goto out_free_tree;

	yt_free(&t);
	free(yaml_path);
	free(wname);
	free(wpath);
	free(variant);
	return m;

out_free_tree:
	yt_free(&t);
	free(variant);
	free(yaml_path);
	free(wname);
	free(wpath);
	model_free(m);
	return NULL;
}

const char *model_variant_name(enum model_variant v)
{
	return v == VARIANT_INT8 ? "int8" : "fp32";
}

double model_q8_scale(const float *x, size_t n)
{
	double mx = 0;

	for (size_t i = 0; i < n; i++) {
		double v = fabs((double)x[i]);

		if (v > mx)	/* NaN never compares greater: ignored */
			mx = v;
	}
	return mx > 0 && isfinite(mx) ? mx / MODEL_Q8_MAX : 1.0;
}

static void model_dense_ref(const struct layer *l, const double *a, double *b)
{
	for (int k = 0; k < l->out; k++) {
		const float *w = l->weight + (size_t)k * l->in;
		double s = l->bias ? l->bias[k] : 0.0;

		for (int j = 0; j < l->in; j++)
			s += (double)w[j] * a[j];
		b[k] = l->act == ACT_RELU && s < 0 ? 0.0 : s;
	}
}

/* INT8 dense (see struct layer): the input's scale is computed from the
 * float32 values the backends see, so both round the same way. */
static void model_dense_q8_ref(const struct layer *l, const double *a, double *b,
			       float *xf, int *q)
{
	double sx;
	int j, k;

	for (j = 0; j < l->in; j++)
		xf[j] = (float)a[j];
	sx = l->in_scale > 0 ? l->in_scale : (float)model_q8_scale(xf, (size_t)l->in);
	for (j = 0; j < l->in; j++)
		q[j] = model_q8(xf[j], sx);
	for (k = 0; k < l->out; k++) {
		const int8_t *w = l->qweight + (size_t)k * l->in;
		int64_t acc = 0;
		double s;

		for (j = 0; j < l->in; j++)
			acc += (int64_t)w[j] * q[j];
		s = (double)acc * sx * l->wscale[k] + (l->bias ? l->bias[k] : 0.0);
		b[k] = l->act == ACT_RELU && s < 0 ? 0.0 : s;
	}
}

/*
 * model_forward_ref - see model.h.  Plain float64 loops, one row at a time;
 * slow on purpose (it is the yardstick the backends are checked against).
 */
void model_forward_ref(const struct model *m, const float *in, int rows, double *out)
{
	double *a = malloc(sizeof(double) * (size_t)m->max_width);
	double *b = malloc(sizeof(double) * (size_t)m->max_width);
	float *xf = malloc(sizeof(float) * (size_t)m->max_width);	/* INT8 scratch */
	int *q = malloc(sizeof(int) * (size_t)m->max_width);
	int r, i, j;

	if (!a || !b || !xf || !q)
		goto out;
	for (r = 0; r < rows; r++) {
		const float *x = in + (size_t)r * m->in_dim;
		int width = m->in_dim;

		for (j = 0; j < width; j++)
			a[j] = x[j];
		for (i = 0; i < m->n_layers; i++) {
			const struct layer *l = &m->layers[i];

			if (l->kind == LAYER_SOFTMAX) {
				double mx = a[0], sum = 0;

				for (j = 1; j < width; j++)
					mx = a[j] > mx ? a[j] : mx;
				for (j = 0; j < width; j++) {
					a[j] = exp(a[j] - mx);
					sum += a[j];
				}
				for (j = 0; j < width; j++)
					a[j] /= sum;
				continue;
			}
			if (l->qweight)
				model_dense_q8_ref(l, a, b, xf, q);
			else
				model_dense_ref(l, a, b);
			width = l->out;
			double *tmp = a;
			a = b;
			b = tmp;
		}
		for (j = 0; j < m->out_dim; j++)
			out[(size_t)r * m->out_dim + j] = a[j];
	}
out:
	free(a);
	free(b);
	free(xf);
	free(q);
}

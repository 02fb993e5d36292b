/*
 * quant.c - write the INT8 variant of an FP32 model (see quant.h).
 *
 * Weights: symmetric, per output channel (max|w| / 127): one outlier
 * channel does not cost the others their resolution, and symmetric keeps
 * the s32 accumulation free of zero-point terms.  Activations: s8,
 * symmetric; per row at run time unless --calibration gives a sample, whose
 * max|x| per layer becomes that layer's static input_scale.
 *
 * The output is the same format as any model (docs/model-format.md):
 * model.yaml with variant: int8 and variant_of, and a safetensors file whose
 * header is padded so the data section is 64-byte aligned, tensors back to
 * back: layers.<i>.weight (I8 [out, in]), layers.<i>.weight_scale (F32
 * [out]), layers.<i>.bias (F32 [out], copied).
 */
#define _GNU_SOURCE
#include "backend.h"
#include "model/quant.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void quant_split_weights(const struct layer *l, int8_t *dst)
{
	for (int o = 0; o < l->out; o++) {
		const int8_t *src = l->qweight + (size_t)o * l->in;
		int8_t *row = dst + (size_t)o * 2 * l->in;

		for (int k = 0; k < l->in; k++) {
			row[k] = src[k];
			row[l->in + k] = (int8_t)(src[k] == INT8_MIN ? INT8_MAX : -src[k]);
		}
	}
}

int quant_weights(const float *w, int out, int in, int8_t *q, float *scale, long *bad)
{
	for (int k = 0; k < out; k++) {
		const float *row = w + (size_t)k * in;
		double s;

		for (int j = 0; j < in; j++) {
			if (!isfinite(row[j])) {
				if (bad)
					*bad = (long)k * in + j;
				return -EINVAL;
			}
		}
		s = model_q8_scale(row, (size_t)in);
		scale[k] = (float)s;
		/* quantize with the float scale the file will hold, so the bound
		 * |w - q*s| <= s/2 holds for what a reader sees */
		for (int j = 0; j < in; j++)
			q[(size_t)k * in + j] = (int8_t)model_q8(row[j], scale[k]);
	}
	return 0;
}

/* One tensor to write. */
struct quant_out {
	char name[48];
	const char *dtype;
	int ndim;
	int64_t dims[2];
	const void *data;
	size_t nbytes;
};

/* Write tensors t[0..n) as dir/model.safetensors. */
static int quant_write_st(const char *path, const struct quant_out *t, int n, char **err)
{
	json_t *hdr = json_object();
	char *js = NULL;
	size_t off = 0, hlen, pad;
	FILE *f = NULL;
	uint64_t le;
	int i, rc = -ENOMEM;

	if (!hdr)
		goto out;
	for (i = 0; i < n; i++) {
		json_t *shape = json_array(), *e;

		for (int k = 0; shape && k < t[i].ndim; k++)
			json_array_append_new(shape, json_integer((json_int_t)t[i].dims[k]));
		e = shape ? json_pack("{s:s, s:o, s:[I, I]}", "dtype", t[i].dtype, "shape", shape,
				      "data_offsets", (json_int_t)off,
				      (json_int_t)(off + t[i].nbytes)) : NULL;
		if (!e)
			goto out;
		json_object_set_new(hdr, t[i].name, e);
		off += t[i].nbytes;
	}
	json_object_set_new(hdr, "__metadata__",
			    json_pack("{s:s, s:s}", "format", "infergw", "variant", "int8"));
	js = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!js)
		goto out;
	hlen = strlen(js);
	pad = (64 - (8 + hlen) % 64) % 64;	/* data section 64-byte aligned */
	f = fopen(path, "wb");
	if (!f) {
		rc = -errno;
		*err = be_strdupf("%s: cannot create: %s", path, strerror(errno));
		goto out;
	}
	le = htole64((uint64_t)(hlen + pad));
	fwrite(&le, 8, 1, f);
	fwrite(js, 1, hlen, f);
	for (size_t p = 0; p < pad; p++)
		fputc(' ', f);
	for (i = 0; i < n; i++)
		fwrite(t[i].data, 1, t[i].nbytes, f);
	if (ferror(f) | (fclose(f) != 0)) {
		f = NULL;
		rc = -EIO;
		*err = be_strdupf("%s: write failed: %s", path, strerror(errno));
		goto out;
	}
	f = NULL;
	rc = 0;
out:
	if (rc == -ENOMEM && !*err)
		*err = be_strdupf("%s: out of memory", path);
	if (f)
		fclose(f);
	free(js);
	json_decref(hdr);
	return rc;
}

/* s as a YAML double-quoted scalar. */
static void quant_yaml_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static int quant_write_yaml(const char *path, const struct model *m, const float *in_scale,
			    bool calibrated, char **err)
{
	FILE *f = fopen(path, "w");
	char *name;
	int i, dense = 0;

	if (!f) {
		*err = be_strdupf("%s: cannot create: %s", path, strerror(errno));
		return -errno;
	}
	name = be_strdupf("%s-int8", m->name);
	fprintf(f, "# made by infergw-quantize from %s (docs/model-format.md)\nname: ", m->dir);
	quant_yaml_str(f, name ? name : m->name);
	free(name);
	fprintf(f, "\nversion: %d\nmax_batch_size: %d\nvariant: int8\nvariant_of: ", m->version,
		m->max_batch_size);
	quant_yaml_str(f, m->name);
	fprintf(f, "\ndescription: \"INT8: s8 weights, symmetric per output channel; s8 "
		"activations, %s\"\n", calibrated ? "static scales calibrated (max|x|) on a sample"
					 : "symmetric per row at run time");
	fprintf(f, "inputs:\n  - {name: ");
	quant_yaml_str(f, m->input.name);
	fprintf(f, ", datatype: FP32, shape: [-1, %d]}\noutputs:\n  - name: ", m->in_dim);
	quant_yaml_str(f, m->output.name);
	fprintf(f, "\n    datatype: FP32\n    shape: [-1, %d]\n", m->out_dim);
	if (m->labels) {
		fprintf(f, "    labels: [");
		for (i = 0; i < m->out_dim; i++) {
			fprintf(f, "%s", i ? ", " : "");
			quant_yaml_str(f, m->labels[i]);
		}
		fprintf(f, "]\n");
	}
	fprintf(f, "layers:\n");
	for (i = 0; i < m->n_layers; i++) {
		const struct layer *l = &m->layers[i];

		if (l->kind == LAYER_SOFTMAX) {
			fprintf(f, "  - {type: softmax}\n");
			continue;
		}
		fprintf(f, "  - {type: dense, weight: layers.%d.weight, weight_scale: "
			"layers.%d.weight_scale", i, i);
		if (l->bias)
			fprintf(f, ", bias: layers.%d.bias", i);
		if (l->act == ACT_RELU)
			fprintf(f, ", activation: relu");
		if (calibrated)
			fprintf(f, ", input_scale: %.9g", (double)in_scale[dense]);
		fprintf(f, "}\n");
		dense++;
	}
	if (ferror(f) | (fclose(f) != 0)) {
		*err = be_strdupf("%s: write failed", path);
		return -EIO;
	}
	return 0;
}

/*
 * Calibrate: in_scale[d] = max|x| / 127 over every value the d-th dense
 * layer reads when the FP32 model runs on the sample (float64, as
 * model_forward_ref).
 */
static int quant_calibrate(const struct model *m, const char *file, float *in_scale, char **err)
{
	const struct st_tensor *t;
	struct st_file *f;
	char *serr = NULL;
	double *a = NULL, *b = NULL, *mx = NULL;
	int n_dense = 0, rc = -ENOMEM;
	int64_t rows, r;

	f = st_open(file, &serr);
	if (!f) {
		*err = be_strdupf("--calibration: %s", serr);
		free(serr);
		return -EINVAL;
	}
	t = st_find(f, "features");
	if (!t || t->dtype != DT_FP32 || t->ndim != 2 || t->dims[1] != m->in_dim ||
	    t->dims[0] < 1) {
		*err = be_strdupf("--calibration: %s: need tensor features F32 [N >= 1, %d]%s", file,
				 m->in_dim, t ? "" : " (not found)");
		rc = -EINVAL;
		goto out;
	}
	rows = t->dims[0];
	for (int i = 0; i < m->n_layers; i++)
		n_dense += m->layers[i].kind == LAYER_DENSE;
	a = malloc(sizeof(double) * (size_t)m->max_width);
	b = malloc(sizeof(double) * (size_t)m->max_width);
	mx = calloc((size_t)n_dense, sizeof(double));
	if (!a || !b || !mx) {
		*err = be_strdupf("--calibration: %s: out of memory", file);
		goto out;
	}
	for (r = 0; r < rows; r++) {
		const float *x = (const float *)t->data + r * m->in_dim;
		int width = m->in_dim, d = 0;

		for (int j = 0; j < width; j++) {
			a[j] = x[j];
			if (!isfinite(a[j])) {
				*err = be_strdupf("--calibration: %s: features[%lld][%d] is not finite",
						 file, (long long)r, j);
				rc = -EINVAL;
				goto out;
			}
		}
		for (int i = 0; i < m->n_layers; i++) {
			const struct layer *l = &m->layers[i];
			double *tmp;

			if (l->kind != LAYER_DENSE)
				continue;	/* softmax only ends a chain: never an input */
			for (int j = 0; j < width; j++)
				mx[d] = fabs(a[j]) > mx[d] ? fabs(a[j]) : mx[d];
			for (int k = 0; k < l->out; k++) {
				double s = l->bias ? l->bias[k] : 0;

				for (int j = 0; j < l->in; j++)
					s += (double)l->weight[(size_t)k * l->in + j] * a[j];
				b[k] = l->act == ACT_RELU && s < 0 ? 0 : s;
			}
			width = l->out;
			tmp = a;
			a = b;
			b = tmp;
			d++;
		}
	}
	for (int d = 0; d < n_dense; d++)
		in_scale[d] = mx[d] > 0 ? (float)(mx[d] / MODEL_Q8_MAX) : 1.0f;
	rc = 0;
out:
	free(a);
	free(b);
	free(mx);
	st_close(f);
	return rc;
}

/* out_dir: created, or (force) an existing directory; else -EEXIST when it
 * holds anything. */
static int quant_prepare_dir(const char *dir, bool force, char **err)
{
	struct dirent *de;
	DIR *d;

	if (mkdir(dir, 0755) == 0)
		return 0;
	if (errno != EEXIST) {
		*err = be_strdupf("%s: cannot create directory: %s", dir, strerror(errno));
		return -errno;
	}
	d = opendir(dir);
	if (!d) {
		*err = be_strdupf("%s: exists and cannot be opened as a directory: %s", dir,
				 strerror(errno));
		return -ENOTDIR;
	}
	while (!force && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			closedir(d);
			*err = be_strdupf("%s: exists and is not empty (--force to write into it)",
					 dir);
			return -EEXIST;
		}
	}
	closedir(d);
	return 0;
}

int quant_model(const char *in_dir, const char *out_dir, const struct quant_opts *o,
		char **err)
{
	struct quant_out *t = NULL;
	struct model *m;
	int8_t **qw = NULL;
	float **sc = NULL, *in_scale = NULL;
	char *path = NULL;
	int i, n = 0, rc = -ENOMEM;
	long bad = 0;

	*err = NULL;
	m = model_load(in_dir, err);
	if (!m)
		return -EINVAL;
	if (m->variant != VARIANT_FP32) {
		*err = be_strdupf("%s: model %s is already variant %s (quantize an FP32 model)",
				 in_dir, m->name, model_variant_name(m->variant));
		rc = -EINVAL;
		goto out;
	}
	t = calloc((size_t)m->n_layers * 3, sizeof(*t));
	qw = calloc((size_t)m->n_layers, sizeof(*qw));
	sc = calloc((size_t)m->n_layers, sizeof(*sc));
	in_scale = calloc((size_t)m->n_layers, sizeof(*in_scale));
	if (!t || !qw || !sc || !in_scale)
		goto out;
	for (i = 0; i < m->n_layers; i++) {
		const struct layer *l = &m->layers[i];

		if (l->kind != LAYER_DENSE)
			continue;
		qw[i] = malloc((size_t)l->out * (size_t)l->in);
		sc[i] = malloc(sizeof(float) * (size_t)l->out);
		if (!qw[i] || !sc[i])
			goto out;
		if (quant_weights(l->weight, l->out, l->in, qw[i], sc[i], &bad)) {
			*err = be_strdupf("%s: layers[%d].weight: value [%ld][%ld] is %g: weights "
					 "must be finite", m->weights->path, i, bad / l->in,
					 bad % l->in, (double)l->weight[bad]);
			rc = -EINVAL;
			goto out;
		}
		for (int k = 0; l->bias && k < l->out; k++) {
			if (!isfinite(l->bias[k])) {
				*err = be_strdupf("%s: layers[%d].bias: value [%d] is %g: biases "
						 "must be finite", m->weights->path, i, k,
						 (double)l->bias[k]);
				rc = -EINVAL;
				goto out;
			}
		}
		t[n++] = (struct quant_out){ .dtype = "I8", .ndim = 2, .dims = { l->out, l->in },
					     .data = qw[i], .nbytes = (size_t)l->out * l->in };
		snprintf(t[n - 1].name, sizeof(t[n - 1].name), "layers.%d.weight", i);
		t[n++] = (struct quant_out){ .dtype = "F32", .ndim = 1, .dims = { l->out },
					     .data = sc[i], .nbytes = sizeof(float) * l->out };
		snprintf(t[n - 1].name, sizeof(t[n - 1].name), "layers.%d.weight_scale", i);
		if (l->bias) {
			t[n++] = (struct quant_out){ .dtype = "F32", .ndim = 1, .dims = { l->out },
						     .data = l->bias,
						     .nbytes = sizeof(float) * l->out };
			snprintf(t[n - 1].name, sizeof(t[n - 1].name), "layers.%d.bias", i);
		}
	}
	if (o->calibration && (rc = quant_calibrate(m, o->calibration, in_scale, err)))
		goto out;
	if ((rc = quant_prepare_dir(out_dir, o->force, err)))
		goto out;
	rc = -ENOMEM;
	path = be_strdupf("%s/model.safetensors", out_dir);
	if (!path || (rc = quant_write_st(path, t, n, err)))
		goto out;
	free(path);
	path = be_strdupf("%s/model.yaml", out_dir);
	rc = path ? quant_write_yaml(path, m, in_scale, o->calibration != NULL, err) : -ENOMEM;
out:
	if (rc == -ENOMEM && !*err)
		*err = be_strdupf("%s: out of memory", in_dir);
	for (i = 0; m && i < m->n_layers; i++) {
		if (qw)
			free(qw[i]);
		if (sc)
			free(sc[i]);
	}
	free(qw);
	free(sc);
	free(t);
	free(in_scale);
	free(path);
	model_free(m);
	return rc;
}

/*
 * admin.h - the admin listener (default 127.0.0.1:8002, Triton's metrics
 * port): metrics, health, configuration, backends, reloads and the
 * KServe/Triton model repository extension.  Reads are GET; everything
 * that changes state is POST.  The repository routes are also served on
 * the inference port (api.c): the index always, load/unload only with
 * admin.repository_on_main.
 *
 *   GET  /metrics                        GET /v2/health/{live,ready}
 *   GET  /admin/config                   GET /admin/backends
 *   POST /admin/reload                   POST /admin/backends/{name}/drain
 *   POST /v2/repository/index            POST /v2/repository/models/{m}/load|unload
 */
#ifndef INFERGW_ADMIN_H
#define INFERGW_ADMIN_H

struct call;

/* adm_handle - answer c (now, or when its control job finishes). */
void adm_handle(struct call *c);
/*
 * adm_repository - answer c, a request under /v2/repository/ on either
 * listener, when its control-thread job finishes (on c's loop).  On the
 * inference port load/unload get 403 naming the admin listener unless
 * admin.repository_on_main is set.
 */
void adm_repository(struct call *c);

#endif

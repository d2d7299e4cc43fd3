/* `gpumux smi` output: pure functions from the daemon's JSON answers to text, so that the
 * nvidia-smi layouts are tested without a daemon. All return 0 or a negative GM_E* code;
 * text comes back in *out, malloc'd, for the caller to free. */
#ifndef GM_CLI_SMI_FORMAT_H
#define GM_CLI_SMI_FORMAT_H

#include "common/error.h"

#include <jansson.h>

#define GM_CLI_CSV_NOHEADER 1u
#define GM_CLI_CSV_NOUNITS  2u

enum gm_cli_query { GM_CLI_QUERY_GPU, GM_CLI_QUERY_APPS };

/* "csv", "csv,noheader", "csv,nounits,noheader"... into GM_CLI_CSV_* flags. */
int gm_cli_smi_parse_format(const char *spec, unsigned *flags, struct gm_error *err);
/* Check a --query-gpu / --query-compute-apps list. An unknown field fails with GM_EINVAL and
 * nvidia-smi's message: Field "foo" is not a valid field to query. */
int gm_cli_smi_check_fields(enum gm_cli_query kind, const char *fields, struct gm_error *err);
/* --help-query-gpu / --help-query-compute-apps: each field, its aliases and what it means. */
int gm_cli_smi_help_query(enum gm_cli_query kind, char **out, struct gm_error *err);
/* CSV exactly as nvidia-smi prints it: "index, name, memory.total [MiB]" then
 * "0, Tesla T4, 15109 MiB"; "[N/A]" where the daemon answered null. `answer` is the body of
 * GET /v1/gpus. */
int gm_cli_smi_query(enum gm_cli_query kind, const json_t *answer, const char *fields,
                     unsigned flags, char **out, struct gm_error *err);

/* The nvidia-smi table (79 columns): GPUs, then Processes. */
int gm_cli_smi_nvsmi(const json_t *answer, char **out, struct gm_error *err);
/* gpumux's own section: each GPU's mode and holder, then each workload. `workloads` is the
 * body of GET /v1/workloads, or NULL to leave the workload table out. */
int gm_cli_smi_gpumux(const json_t *answer, const json_t *workloads, char **out,
                      struct gm_error *err);
/* The default view: hostname, a blank line, the nvidia-smi table, a blank line, gpumux's. */
int gm_cli_smi_view(const json_t *answer, const json_t *workloads, char **out,
                    struct gm_error *err);

/* Keep only the GPUs named by `ids` ("0", "0,1", a UUID or a PCI bus id) in answer.gpus.
 * An id that names no GPU fails with GM_ENOTFOUND. */
int gm_cli_smi_select(json_t *answer, const char *ids, struct gm_error *err);

/* -L: "GPU 0: Tesla T4 (UUID: GPU-...)" per GPU. */
int gm_cli_smi_list(const json_t *answer, char **out, struct gm_error *err);
/* -d MEMORY,UTILIZATION,...: the sections of -q to show, as a bit set (0: all). */
int gm_cli_smi_parse_display(const char *spec, unsigned *sections, struct gm_error *err);
/* -q: nvidia-smi's detailed view, per GPU, with a gpumux section when all sections show. */
int gm_cli_smi_detail(const json_t *answer, unsigned sections, char **out, struct gm_error *err);
/* dmon and pmon: one line per GPU, or per process (with its workload's name), headed by two
 * comment lines when header is set. */
int gm_cli_smi_dmon(const json_t *answer, int header, char **out, struct gm_error *err);
int gm_cli_smi_pmon(const json_t *answer, int header, char **out, struct gm_error *err);
/* Keep the workloads placed on the answer's GPUs only (smi -i). */
void gm_cli_smi_select_workloads(const json_t *answer, json_t *workloads);

#endif

/* Session records as JSON text, for the Redis store (see store_record.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store_record.h"

/* ,"key":"value" for a string that may be absent. */
static void
opt_str(struct jsonw *w, const char *key, const char *v)
{
	if (v == NULL)
		return;
	jsonw_raw(w, ",\"", 2);
	jsonw_str_plain(w, key);
	jsonw_raw(w, "\":", 2);
	jsonw_str(w, v);
}

void
store_record_write(struct jsonw *w, const struct store_session *r)
{
	char sid[SESSION_ID_HEX + 1];

	session_id_format(r->id, sid);
	jsonw_lit(w, "{\"id\":\"");
	jsonw_raw(w, sid, SESSION_ID_HEX);
	jsonw_lit(w, "\",\"inviter\":");
	jsonw_str(w, r->inviter);
	jsonw_lit(w, ",\"invitee\":");
	jsonw_str(w, r->invitee);
	jsonw_lit(w, ",\"state\":");
	jsonw_int(w, r->m.state);
	jsonw_lit(w, ",\"done\":[");
	for (int i = 0; i < RV_ROLE_COUNT; i++) {
		if (i > 0)
			jsonw_lit(w, ",");
		jsonw_int(w, r->m.done[i]);
	}
	jsonw_lit(w, "],\"created\":");
	jsonw_int(w, r->created);
	jsonw_lit(w, ",\"updated\":");
	jsonw_int(w, r->updated);
	jsonw_lit(w, ",\"expires\":");
	jsonw_int(w, r->expires);
	jsonw_lit(w, ",\"event\":");
	jsonw_int(w, (long long)r->event);
	opt_str(w, "reason", r->reason);
	if (r->has_code) {
		jsonw_lit(w, ",\"code\":");
		jsonw_int(w, r->code);
	}
	/* Already compact JSON text. */
	if (r->data != NULL) {
		jsonw_lit(w, ",\"data\":");
		jsonw_raw(w, r->data, strlen(r->data));
	}
	if (r->app_data != NULL) {
		jsonw_lit(w, ",\"app_data\":");
		jsonw_raw(w, r->app_data, strlen(r->app_data));
	}
	opt_str(w, "inviter_device", r->inviter_device);
	opt_str(w, "answered_by", r->answered_by);
	opt_str(w, "by_user", r->by_user);
	opt_str(w, "by_device", r->by_device);
	opt_str(w, "topic", r->topic);
	if (r->replaced) {
		session_id_format(r->replaced_by, sid);
		jsonw_lit(w, ",\"replaced_by\":\"");
		jsonw_raw(w, sid, SESSION_ID_HEX);
		jsonw_lit(w, "\"");
	}
	jsonw_lit(w, "}");
}

void
store_record_free(struct store_record *r)
{
	json_decref(r->root);
	free(r->data);
	free(r->app_data);
	memset(r, 0, sizeof *r);
}

/* Compact text of an optional value (NULL for none); false when memory ran out. */
static bool
dump_opt(const json_t *v, char **out)
{
	*out = v != NULL ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	return v == NULL || *out != NULL;
}

int
store_record_parse(const char *text, size_t len, struct store_record *out)
{
	struct store_session *s = &out->s;
	const char *sid, *replaced = NULL;
	json_t *done, *data = NULL, *app = NULL, *code = NULL;
	json_int_t state, created, updated, expires, event;

	memset(out, 0, sizeof *out);
	out->root = json_loadb(text, len, 0, NULL);
	if (out->root == NULL ||
	    json_unpack(out->root,
			"{s:s, s:s, s:s, s:I, s:o, s:I, s:I, s:I, s:I, s?s, s?o, s?o, s?o, s?s, "
			"s?s, s?s, s?s, s?s, s?s}",
			"id", &sid, "inviter", &s->inviter, "invitee", &s->invitee, "state", &state,
			"done", &done, "created", &created, "updated", &updated, "expires",
			&expires, "event", &event, "reason", &s->reason, "code", &code, "data",
			&data, "app_data", &app, "inviter_device", &s->inviter_device,
			"answered_by", &s->answered_by, "by_user", &s->by_user, "by_device",
			&s->by_device, "topic", &s->topic, "replaced_by", &replaced) != 0 ||
	    !session_id_parse(sid, s->id) || state < 0 || state >= RV_STATE_COUNT ||
	    !json_is_array(done) || json_array_size(done) != RV_ROLE_COUNT ||
	    (code != NULL && !json_is_integer(code)) ||
	    (replaced != NULL && !session_id_parse(replaced, s->replaced_by)))
		goto bad;
	s->m.state = (enum rv_state)state;
	for (size_t i = 0; i < RV_ROLE_COUNT; i++) {
		json_int_t v = json_integer_value(json_array_get(done, i));
		if (!json_is_integer(json_array_get(done, i)) || v < 0 || v > UINT16_MAX)
			goto bad;
		s->m.done[i] = (uint16_t)v;
	}
	s->created = created;
	s->updated = updated;
	s->expires = expires;
	s->event = (uint64_t)event;
	s->has_code = code != NULL;
	s->code = code != NULL ? json_integer_value(code) : 0;
	s->replaced = replaced != NULL;
	if (!dump_opt(data, &out->data) || !dump_opt(app, &out->app_data))
		goto bad;
	s->data = out->data;
	s->app_data = out->app_data;
	return 0;
bad:
	store_record_free(out);
	return -1;
}

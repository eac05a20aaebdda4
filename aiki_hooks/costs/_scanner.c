/* The cold scan's inner loop in C: find the usage lines of a transcript buffer and read
 * the few fields of each that the cost index keeps.
 *
 * Optional: scan.py has the same logic in Python (orjson + row_from_line) and uses it
 * where this module was not built. This module decides only what it can decide exactly
 * as the Python path would: every line it answers for is validated as a whole (strict
 * JSON, strict UTF-8, the same number and escape rules as orjson), and anything unusual
 * (an escape in a field it extracts, a float token count, a duplicate key, invalid
 * bytes, great depth...) is handed back as FALLBACK for the Python path to decide.
 *
 * scan_usage(buffer, end, mark[, other_mark]) -> list, one item per line of buffer[:end]
 * containing *mark*, in order (buffer[:end] must end with a newline):
 *   (start, stop, ROW, key, timestamp, session, model, sidechain,
 *    (timestamp: POSIX seconds, or the text where it is not in the usual form)
 *    input, output, cache_write, cache_read, cache_write_1h)
 *   (start, stop, SKIP)      valid JSON, but not an assistant line with a usage object
 *   (start, stop, FALLBACK)  let the Python path parse buffer[start:stop]
 * then one (start, stop, OTHER) per line containing *other_mark* (Claude Code's
 * cost-state lines: rare, parsed in Python).
 * key is "message.id:requestId" (requestRef when requestId is empty or absent) or None
 * when either is missing; model is "unknown" when empty or absent; session "" likewise.
 *
 * scan_usage(buffer, end, mark, other_mark, seen, rows, file_id, base_offset, book,
 * resolve) -> (usage_lines, items): the same, but the usage lines are also *decided*
 * here, as scan.priced_row would (duplicates by *seen*, rows appended to *rows*: a list
 * of tuples, or a bytearray of JSON arrays each followed by a comma; priced
 * from the schedules in *book*, filled by calling *resolve(model)*), until the first
 * line only Python can judge; that line and all after it come back as items.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#ifdef __SSE2__
#include <emmintrin.h>
#endif

enum { ROW = 0, FALLBACK = 1, SKIP = 2, OTHER = 3, DUPLICATE = 4 /* internal */ };
#define MAX_DEPTH 512
#define MAX_INT_DIGITS 18 /* fits in int64; longer numbers go to the Python path */

typedef const unsigned char *ptr;

/* What the parser learnt of one extracted value. */
enum { V_ABSENT = 0, V_STRING, V_INT, V_TRUE, V_FALSE, V_NULL, V_OBJECT, V_OTHER };
typedef struct {
    int kind;
    ptr s; /* V_STRING: the bytes between the quotes */
    Py_ssize_t n;
    int plain; /* V_STRING: no escape */
    long long i; /* V_INT: a non-negative integer */
} Val;

typedef struct {
    Val type, request_id, request_ref, timestamp, session, sidechain, message;
    Val id, model, usage;
    Val input, output, cache_write, cache_read, cache_creation, write_1h;
    int bad; /* a reason to fall back */
} Line;

static inline ptr skip_ws(ptr p, ptr end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
    return p;
}

static inline int hex(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One UTF-8 sequence starting at p (p[0] >= 0x80), strictly (no overlongs, no
 * surrogates, <= U+10FFFF); returns its length or 0. */
static inline int utf8_len(ptr p, ptr end) {
    unsigned char c = p[0];
    Py_ssize_t left = end - p;
    if (c >= 0xC2 && c <= 0xDF) {
        return (left >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (left < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0;  /* overlong */
        if (c == 0xED && p[1] >= 0xA0) return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (left < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0; /* overlong */
        if (c == 0xF4 && p[1] >= 0x90) return 0; /* > U+10FFFF */
        return 4;
    }
    return 0;
}

/* A string after its opening quote; returns the position after the closing quote or
 * NULL (invalid, or an escape the Python path should judge: any surrogate). */
static ptr scan_string(ptr p, ptr end, Val *out) {
    ptr start = p;
    int plain = 1;
    while (p < end) {
        /* Past plain ASCII text, the bulk of a transcript, 16 or 8 bytes at a time: stop
         * at a byte that is '"', '\\', a control character or not ASCII. */
#ifdef __SSE2__
        while (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)p);
            __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                                     _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                                        _mm_cmplt_epi8(v, _mm_set1_epi8(0x20))); /* signed: >= 0x80 too */
            int mask = _mm_movemask_epi8(stop);
            if (mask) {
                p += __builtin_ctz((unsigned)mask);
                break;
            }
            p += 16;
        }
#endif
        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
            uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
            uint64_t special = ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) |
                               (w - ones * 0x20) | w;
            if (special & highs) break;
            p += 8;
        }
        if (p >= end) break;
        unsigned char c = *p;
        if (c == '"') {
            if (out) {
                out->kind = V_STRING;
                out->s = start;
                out->n = p - start;
                out->plain = plain;
            }
            return p + 1;
        }
        if (c == '\\') {
            plain = 0;
            if (p + 1 >= end) return NULL;
            c = p[1];
            if (c == 'u') {
                if (p + 6 > end) return NULL;
                int a = hex(p[2]), b = hex(p[3]), d = hex(p[4]), e = hex(p[5]);
                if (a < 0 || b < 0 || d < 0 || e < 0) return NULL;
                int code = (a << 12) | (b << 8) | (d << 4) | e;
                if (code >= 0xD800 && code <= 0xDFFF) return NULL; /* pairs: the Python path */
                p += 6;
                continue;
            }
            if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't') {
                p += 2;
                continue;
            }
            return NULL;
        }
        if (c < 0x20) return NULL;
        if (c >= 0x80) {
            int len = utf8_len(p, end);
            if (!len) return NULL;
            p += len;
            continue;
        }
        p++;
    }
    return NULL;
}

/* A number; sets *out to V_INT for a plain non-negative integer, else V_OTHER. */
static ptr scan_number(ptr p, ptr end, Val *out) {
    ptr start = p;
    int negative = 0, fraction = 0;
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    if (p >= end) return NULL;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') p++;
    } else {
        return NULL;
    }
    ptr int_end = p;
    if (p < end && *p == '.') {
        fraction = 1;
        p++;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        fraction = 1;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        ptr digits = p;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        while (p < end && *p >= '0' && *p <= '9') p++;
        if (p - digits > 3) return NULL; /* infinity, or a denormal: the Python path */
    }
    if (int_end - start - negative > MAX_INT_DIGITS) return NULL; /* beyond int64: the Python path */
    if (out) {
        long long value = 0;
        for (ptr q = start + negative; q < int_end; q++) value = value * 10 + (*q - '0');
        /* A count at or past 2**53 is no count (scan.MAX_COUNT): the Python path says so. */
        if (!negative && !fraction && value < (1LL << 53)) {
            out->kind = V_INT;
            out->i = value;
        } else {
            out->kind = V_OTHER;
        }
    }
    return p;
}

static ptr scan_value(ptr p, ptr end, int depth, Val *out, Line *line, int level);

static inline int key_is(const Val *key, const char *name, Py_ssize_t len) {
    return key->n == len && memcmp(key->s, name, (size_t)len) == 0;
}

#define KEY(name) key_is(&key, name, (Py_ssize_t)(sizeof(name) - 1))

/* Which field of the line an object member at *level* holds (NULL: none), and the
 * level of the object it may open. Levels: 1 the line, 2 message, 3 usage,
 * 4 cache_creation, 0 anything else. */
static Val *field_for(Line *line, int level, const Val *k, int *child_level) {
    const Val key = *k;
    *child_level = 0;
    switch (level) {
    case 1:
        if (KEY("type")) return &line->type;
        if (KEY("message")) { *child_level = 2; return &line->message; }
        if (KEY("requestId")) return &line->request_id;
        if (KEY("requestRef")) return &line->request_ref;
        if (KEY("timestamp")) return &line->timestamp;
        if (KEY("sessionId")) return &line->session;
        if (KEY("isSidechain")) return &line->sidechain;
        return NULL;
    case 2:
        if (KEY("id")) return &line->id;
        if (KEY("model")) return &line->model;
        if (KEY("usage")) { *child_level = 3; return &line->usage; }
        return NULL;
    case 3:
        if (KEY("input_tokens")) return &line->input;
        if (KEY("output_tokens")) return &line->output;
        if (KEY("cache_creation_input_tokens")) return &line->cache_write;
        if (KEY("cache_read_input_tokens")) return &line->cache_read;
        if (KEY("cache_creation")) { *child_level = 4; return &line->cache_creation; }
        return NULL;
    case 4:
        if (KEY("ephemeral_1h_input_tokens")) return &line->write_1h;
        return NULL;
    }
    return NULL;
}

/* After a member or element: 1 with *p past a ',' (another follows), 0 with *p past
 * *close* (the end), -1 for anything else. */
static int next_member(ptr *p, ptr end, char close) {
    ptr q = skip_ws(*p, end);
    if (q >= end) return -1;
    if (*q == ',') {
        *p = skip_ws(q + 1, end);
        return 1;
    }
    if (*q == close) {
        *p = q + 1;
        return 0;
    }
    return -1;
}

/* An object after its '{'. Members of an extracted level fill *line*. */
static ptr scan_object(ptr p, ptr end, int depth, Line *line, int level) {
    p = skip_ws(p, end);
    if (p < end && *p == '}') return p + 1;
    while (1) {
        if (p >= end || *p != '"') return NULL;
        Val key = {0};
        p = scan_string(p + 1, end, &key);
        if (!p) return NULL;
        p = skip_ws(p, end);
        if (p >= end || *p != ':') return NULL;
        p = skip_ws(p + 1, end);
        Val *target = NULL;
        int child_level = 0;
        if (level) {
            if (!key.plain) line->bad = 1; /* "typ\u0065": let the Python path decode it */
            target = field_for(line, level, &key, &child_level);
            if (target && target->kind != V_ABSENT) line->bad = 1; /* a duplicate key: orjson keeps the last */
        }
        Val scratch = {0};
        p = scan_value(p, end, depth + 1, target ? target : &scratch, line, child_level);
        int more = p ? next_member(&p, end, '}') : -1;
        if (more < 0) return NULL;
        if (!more) return p;
    }
}

static ptr scan_array(ptr p, ptr end, int depth, Line *line) {
    p = skip_ws(p, end);
    if (p < end && *p == ']') return p + 1;
    while (1) {
        p = scan_value(p, end, depth + 1, NULL, line, 0);
        int more = p ? next_member(&p, end, ']') : -1;
        if (more < 0) return NULL;
        if (!more) return p;
    }
}

static ptr scan_value(ptr p, ptr end, int depth, Val *out, Line *line, int level) {
    if (depth > MAX_DEPTH || p >= end) return NULL;
    switch (*p) {
    case '"':
        return scan_string(p + 1, end, out);
    case '{':
        if (out) out->kind = V_OBJECT;
        return scan_object(p + 1, end, depth, line, level);
    case '[':
        if (out) out->kind = V_OTHER;
        return scan_array(p + 1, end, depth, line);
    case 't':
        if (end - p >= 4 && memcmp(p, "true", 4) == 0) {
            if (out) out->kind = V_TRUE;
            return p + 4;
        }
        return NULL;
    case 'f':
        if (end - p >= 5 && memcmp(p, "false", 5) == 0) {
            if (out) out->kind = V_FALSE;
            return p + 5;
        }
        return NULL;
    case 'n':
        if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
            if (out) out->kind = V_NULL;
            return p + 4;
        }
        return NULL;
    default:
        return scan_number(p, end, out);
    }
}

static inline int digits(ptr p, int n, int *out) {
    int value = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        value = value * 10 + (p[i] - '0');
    }
    *out = value;
    return 1;
}

/* Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static long long days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    int yoe = (int)(y - era * 400);
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The usual transcript timestamp, YYYY-MM-DDTHH:MM:SS[.f{1,6}][Z|+HH:MM|-HH:MM] (naive =
 * UTC, as parse_timestamp), as POSIX seconds; 0 for any other form, which the Python
 * path then parses. The same double as datetime.timestamp(): whole microseconds (exact
 * in a double) divided by 10**6, correctly rounded in both. */
static int parse_timestamp(ptr s, Py_ssize_t n, double *out, long long *micros) {
    int year, month, day, hour, minute, second, micro = 0;
    if (n < 19 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') return 0;
    if (!digits(s, 4, &year) || !digits(s + 5, 2, &month) || !digits(s + 8, 2, &day) || !digits(s + 11, 2, &hour) ||
        !digits(s + 14, 2, &minute) || !digits(s + 17, 2, &second))
        return 0;
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return 0;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > month_days[month - 1] + (month == 2 && leap)) return 0;
    Py_ssize_t i = 19;
    if (i < n && s[i] == '.') {
        int count = 0;
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9' && count < 7) {
            micro = micro * 10 + (s[i] - '0');
            i++;
            count++;
        }
        if (count < 1 || count > 6) return 0;
        for (; count < 6; count++) micro *= 10;
    }
    int offset = 0;
    if (i < n && s[i] == 'Z') {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        if (n - i != 6 || s[i + 3] != ':' || !digits(s + i + 1, 2, &oh) || !digits(s + i + 4, 2, &om) || oh > 23 ||
            om > 59)
            return 0;
        offset = (s[i] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
        i += 6;
    }
    if (i != n) return 0;
    long long seconds = days_from_civil(year, month, day) * 86400LL + hour * 3600 + minute * 60 + second - offset;
    *micros = seconds * 1000000LL + micro;
    *out = (double)*micros / 1e6;
    return 1;
}

/* A string field as Python text: NULL with no error set for "fall back". */
static PyObject *text(const Val *v) {
    PyObject *s = PyUnicode_DecodeUTF8((const char *)v->s, v->n, "strict");
    if (!s) PyErr_Clear();
    return s;
}

/* A token count: a plain non-negative integer, or (where allowed) absent = 0. */
static inline int count(const Val *v, int absent_ok, long long *out) {
    if (v->kind == V_INT) {
        *out = v->i;
        return 1;
    }
    if (v->kind == V_ABSENT && absent_ok) {
        *out = 0;
        return 1;
    }
    return 0;
}

/* An optional string field: absent/null/false/"" -> empty (Python's `x or ...`). */
enum { OPT_EMPTY, OPT_TEXT, OPT_BAD };
static inline int optional_text(const Val *v) {
    if (v->kind == V_ABSENT || v->kind == V_NULL || v->kind == V_FALSE) return OPT_EMPTY;
    if (v->kind == V_STRING) {
        if (!v->plain) return OPT_BAD;
        return v->n ? OPT_TEXT : OPT_EMPTY;
    }
    return OPT_BAD;
}

static PyObject *short_item(Py_ssize_t start, Py_ssize_t stop, int kind) {
    return Py_BuildValue("(nni)", start, stop, kind);
}

/* One line's verdict; for ROW, new references to its key (or None), timestamp (a float,
 * or the text), session and model. */
typedef struct {
    int kind;
    PyObject *key, *ts, *session, *model;
    int sidechain;
    long long input, output, cache_write, cache_read, write_1h;
    long long micros; /* the timestamp in whole microseconds (ts is a float): exact in JSON as S.ffffff */
} Judged;

static void judged_clear(Judged *j) {
    Py_CLEAR(j->key);
    Py_CLEAR(j->ts);
    Py_CLEAR(j->session);
    Py_CLEAR(j->model);
}

/* "id:request" as a str: straight from the bytes when they are ASCII (ids always are). */
static PyObject *make_key(const Val *id, const Val *request) {
    int ascii = 1;
    for (Py_ssize_t i = 0; i < id->n; i++) ascii &= id->s[i] < 0x80;
    for (Py_ssize_t i = 0; i < request->n; i++) ascii &= request->s[i] < 0x80;
    if (ascii) {
        PyObject *key = PyUnicode_New(id->n + 1 + request->n, 127);
        if (!key) return NULL;
        char *data = PyUnicode_DATA(key);
        memcpy(data, id->s, (size_t)id->n);
        data[id->n] = ':';
        memcpy(data + id->n + 1, request->s, (size_t)request->n);
        return key;
    }
    PyObject *key = NULL, *a = text(id), *b = a ? text(request) : NULL;
    if (a && b) key = PyUnicode_FromFormat("%U:%U", a, b);
    Py_XDECREF(a);
    Py_XDECREF(b);
    return key;
}

/* The verdict on buffer[start:stop]; -1 only on a Python error (memory). With *seen*, a
 * line whose key is in it is a DUPLICATE, told before anything else is built. */
static int judge_line(ptr base, Py_ssize_t start, Py_ssize_t stop, Judged *out, PyObject *seen) {
    ptr p = base + start, end = base + stop;
    Line line;
    memset(&line, 0, sizeof line);
    memset(out, 0, sizeof *out);
    out->kind = FALLBACK;
    p = skip_ws(p, end);
    if (p >= end || *p != '{') return 0;
    p = scan_object(p + 1, end, 1, &line, 1);
    if (!p || skip_ws(p, end) != end || line.bad) return 0;

    /* As row_from_line: an assistant line whose message has a usage object. */
    if (line.type.kind == V_STRING && !line.type.plain) return 0;
    if (!(line.type.kind == V_STRING && line.type.n == 9 && memcmp(line.type.s, "assistant", 9) == 0) ||
        line.message.kind != V_OBJECT || line.usage.kind != V_OBJECT) {
        out->kind = SKIP;
        return 0;
    }
    if (!count(&line.input, 0, &out->input) || !count(&line.output, 0, &out->output) ||
        !count(&line.cache_write, 1, &out->cache_write) || !count(&line.cache_read, 1, &out->cache_read))
        return 0;
    if (line.cache_creation.kind == V_OBJECT && !count(&line.write_1h, 1, &out->write_1h)) return 0;
    if (line.timestamp.kind != V_STRING || !line.timestamp.plain) return 0;
    int id = optional_text(&line.id), model = optional_text(&line.model), session = optional_text(&line.session);
    int rid = optional_text(&line.request_id), rref = optional_text(&line.request_ref);
    if (id == OPT_BAD || model == OPT_BAD || session == OPT_BAD || rid == OPT_BAD ||
        (rid == OPT_EMPTY && rref == OPT_BAD))
        return 0;
    switch (line.sidechain.kind) {
    case V_TRUE: out->sidechain = 1; break;
    case V_FALSE: case V_NULL: case V_ABSENT: out->sidechain = 0; break;
    default: return 0;
    }

    const Val *request = rid == OPT_TEXT ? &line.request_id : (rref == OPT_TEXT ? &line.request_ref : NULL);
    if (id == OPT_TEXT && request) {
        out->key = make_key(&line.id, request);
        if (!out->key) goto fallback;
        if (seen) {
            int found = PySet_Contains(seen, out->key);
            if (found < 0) goto fallback;
            if (found) {
                Py_CLEAR(out->key);
                out->kind = DUPLICATE;
                return 0;
            }
        }
    } else {
        out->key = Py_NewRef(Py_None);
    }
    double seconds;
    if (parse_timestamp(line.timestamp.s, line.timestamp.n, &seconds, &out->micros)) {
        out->ts = PyFloat_FromDouble(seconds);
    } else {
        out->ts = text(&line.timestamp);
    }
    if (!out->ts) goto fallback;
    if (session == OPT_TEXT) {
        out->session = text(&line.session);
        if (!out->session) goto fallback;
        PyUnicode_InternInPlace(&out->session);
    } else {
        out->session = PyUnicode_FromStringAndSize("", 0);
    }
    if (model == OPT_TEXT) {
        out->model = text(&line.model);
        if (!out->model) goto fallback;
        PyUnicode_InternInPlace(&out->model);
    } else {
        out->model = PyUnicode_InternFromString("unknown");
    }
    if (!out->session || !out->model) goto fallback;
    out->kind = ROW;
    return 0;

fallback:
    judged_clear(out);
    out->kind = FALLBACK;
    return PyErr_Occurred() ? -1 : 0;
}

/* The item handed to Python for a judged line (references taken over). */
static PyObject *judged_item(Judged *j, Py_ssize_t start, Py_ssize_t stop) {
    if (j->kind != ROW) return short_item(start, stop, j->kind);
    PyObject *item = Py_BuildValue("(nniNNNNiLLLLL)", start, stop, ROW, j->key, j->ts, j->session, j->model,
                                   j->sidechain, j->input, j->output, j->cache_write, j->cache_read, j->write_1h);
    j->key = j->ts = j->session = j->model = NULL;
    return item;
}

/* ------------------------------------------------------------------ prices */

/* A model's prices as PriceBook.schedule gives them: None (unpriced), or
 * (tier_prompt_tokens or -1, tier_rates or None, rates, ((since, rates), ...)), each
 * rates (input, cache_write_5m, cache_write_1h, cache_read, output) in USD per million. */
#define MAX_CHANGES 8
typedef struct {
    PyObject *schedule; /* borrowed from the caller's dict, which outlives the call */
    long long tier_tokens;
    double tier[5], base[5], change_rates[MAX_CHANGES][5], change_since[MAX_CHANGES];
    int changes;
} Price;

#define MAX_PRICES 32
typedef struct {
    PyObject *book, *resolve; /* the caller's dict (model -> schedule) and PriceBook.schedule */
    Price known[MAX_PRICES];
    int count;
} Prices;

static int five_rates(PyObject *tuple, double *out) {
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) != 5) return -1;
    for (int i = 0; i < 5; i++) {
        out[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(tuple, i));
        if (out[i] == -1.0 && PyErr_Occurred()) return -1;
    }
    return 0;
}

/* The Price of *model*, NULL for unpriced; sets *error* on a Python error. */
static const Price *price_for(Prices *prices, PyObject *model, int *error) {
    PyObject *schedule = PyDict_GetItemWithError(prices->book, model);
    if (!schedule) {
        if (PyErr_Occurred()) goto failed;
        PyObject *made = PyObject_CallOneArg(prices->resolve, model);
        if (!made) goto failed;
        int stored = PyDict_SetItem(prices->book, model, made);
        Py_DECREF(made);
        if (stored < 0) goto failed;
        schedule = PyDict_GetItemWithError(prices->book, model);
        if (!schedule) goto failed;
    }
    if (schedule == Py_None) return NULL;
    for (int i = 0; i < prices->count; i++)
        if (prices->known[i].schedule == schedule) return &prices->known[i];
    if (prices->count == MAX_PRICES) prices->count = 0; /* more models than this in one buffer: start over */
    Price *price = &prices->known[prices->count];
    memset(price, 0, sizeof *price);
    PyObject *changes;
    if (!PyTuple_Check(schedule) || PyTuple_GET_SIZE(schedule) != 4) goto malformed;
    price->tier_tokens = PyLong_AsLongLong(PyTuple_GET_ITEM(schedule, 0));
    if (price->tier_tokens == -1 && PyErr_Occurred()) goto failed;
    if (price->tier_tokens >= 0 && five_rates(PyTuple_GET_ITEM(schedule, 1), price->tier) < 0) goto malformed;
    if (five_rates(PyTuple_GET_ITEM(schedule, 2), price->base) < 0) goto malformed;
    changes = PyTuple_GET_ITEM(schedule, 3);
    if (!PyTuple_Check(changes) || PyTuple_GET_SIZE(changes) > MAX_CHANGES) goto malformed;
    price->changes = (int)PyTuple_GET_SIZE(changes);
    for (int i = 0; i < price->changes; i++) {
        PyObject *change = PyTuple_GET_ITEM(changes, i);
        if (!PyTuple_Check(change) || PyTuple_GET_SIZE(change) != 2) goto malformed;
        price->change_since[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(change, 0));
        if (PyErr_Occurred() || five_rates(PyTuple_GET_ITEM(change, 1), price->change_rates[i]) < 0) goto malformed;
    }
    price->schedule = schedule;
    prices->count++;
    return price;

malformed:
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a malformed price schedule");
failed:
    *error = 1;
    return NULL;
}

/* PriceBook.cost, operation for operation (the same doubles: the products and sums in
 * the same order, no fused multiply-add; see setup.py). */
static double cost_of(const Price *price, double ts, long long input, long long output, long long write_5m,
                      long long write_1h, long long cache_read) {
    const double *r = price->base;
    for (int i = 0; i < price->changes; i++)
        if (ts >= price->change_since[i]) r = price->change_rates[i];
    if (price->tier_tokens >= 0 && input + write_5m + write_1h + cache_read > price->tier_tokens) r = price->tier;
    return ((double)input * r[0] + (double)output * r[4] + (double)write_5m * r[1] + (double)write_1h * r[2] +
            (double)cache_read * r[3]) / 1000000.0;
}

/* ------------------------------------------------------------------ the scan */

/* A growing byte string (the JSON of rows). */
typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} Text;

static void put(Text *t, const char *bytes, size_t n) {
    if (t->failed) return;
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 65536;
        while (cap < t->len + n) cap *= 2;
        char *grown = PyMem_Realloc(t->data, cap);
        if (!grown) {
            t->failed = 1;
            return;
        }
        t->data = grown, t->cap = cap;
    }
    memcpy(t->data + t->len, bytes, n);
    t->len += n;
}

static void put_str(Text *t, const char *s) { put(t, s, strlen(s)); }

/* Decimal digits of value >= 0 ending at *end*; returns where they start. (snprintf
 * was a tenth of a worker's time: it parses its format for every number.) */
static char *digits_of(unsigned long long value, char *end) {
    do {
        *--end = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    return end;
}

static void put_int(Text *t, long long value) {
    char digits[24], *end = digits + sizeof digits;
    char *start = digits_of(value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value, end);
    if (value < 0) *--start = '-';
    put(t, start, (size_t)(end - start));
}

/* repr(): the shortest text that reads back as the same double. */
static void put_double(Text *t, double value) {
    char *text = PyOS_double_to_string(value, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (!text) {
        t->failed = 1;
        return;
    }
    put_str(t, text);
    PyMem_Free(text);
}

/* A timestamp made from whole microseconds: their exact decimal (S.ffffff, trailing zeros
 * dropped) reads back as the same double (both roundings are to nearest), without the
 * shortest-repr search; before 1970, repr(). */
static void put_micros(Text *t, long long micros, double value) {
    if (micros < 0) {
        put_double(t, value);
        return;
    }
    char digits[40], *end = digits + sizeof digits;
    long long whole = micros / 1000000, fraction = micros % 1000000;
    char *point = end - 7; /* S.ffffff: six digits after the point, then trailing zeros dropped */
    for (char *at = end; at > point + 1;) {
        *--at = (char)('0' + fraction % 10);
        fraction /= 10;
    }
    *point = '.';
    char *start = digits_of((unsigned long long)whole, point);
    char *stop = end;
    while (stop[-1] == '0' && stop - 2 != point) stop--;
    put(t, start, (size_t)(stop - start));
}

/* A str known to need no escaping in JSON (it came from a JSON string without escapes,
 * or is one of ours), quoted. */
static int put_plain(Text *t, PyObject *str) {
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(str, &n);
    if (!utf8) return -1;
    put(t, "\"", 1);
    put(t, utf8, (size_t)n);
    put(t, "\"", 1);
    return 0;
}

typedef struct {
    PyObject *items;  /* what Python decides, in order */
    PyObject *seen;   /* NULL: every usage line becomes an item (no decisions here) */
    PyObject *rows;   /* a list: rows as tuples; a bytearray: rows as JSON arrays, each with a comma */
    Text json;
    Py_ssize_t file_id, base_offset, usage_lines;
    int handed_over;  /* a line only Python can judge came: Python decides from there on */
    Prices prices;
} Scan;

/* Decide a ROW line here as priced_row would, appending its row; 1 when it must go to
 * Python instead (a timestamp this module does not read), -1 on a Python error. */
static int decide(Scan *scan, Judged *j, Py_ssize_t start) {
    int found = j->key == Py_None ? 0 : PySet_Contains(scan->seen, j->key);
    if (found < 0) return -1;
    if (found) { /* a repeat of a response: counted once, as in ccusage */
        scan->usage_lines++;
        judged_clear(j);
        return 0;
    }
    if (!PyFloat_CheckExact(j->ts)) return 1;
    long long write_1h = j->write_1h < j->cache_write ? j->write_1h : j->cache_write;
    long long write_5m = j->cache_write - write_1h;
    if (!(j->input || j->output || j->cache_write || j->cache_read)) {
        judged_clear(j);
        return 0;
    }
    if (j->key == Py_None) {
        Py_DECREF(j->key);
        j->key = PyUnicode_FromFormat("@%zd:%zd", scan->file_id, scan->base_offset + start);
        if (!j->key) return -1;
    }
    if (PySet_Add(scan->seen, j->key) < 0) return -1;
    double ts = PyFloat_AS_DOUBLE(j->ts);
    int error = 0;
    const Price *price = price_for(&scan->prices, j->model, &error);
    if (error) return -1;
    PyObject *cost = price ? PyFloat_FromDouble(cost_of(price, ts, j->input, j->output, write_5m, write_1h,
                                                        j->cache_read))
                           : Py_NewRef(Py_None);
    if (!cost) return -1;
    if (!PyList_Check(scan->rows)) { /* JSON: no Python objects kept for the row */
        Text *t = &scan->json;
        put(t, "[", 1);
        int bad = put_plain(t, j->key) < 0;
        put(t, ",", 1);
        put_micros(t, j->micros, ts);
        put(t, ",", 1);
        bad = bad || put_plain(t, j->session) < 0;
        put(t, ",", 1);
        bad = bad || put_plain(t, j->model) < 0;
        long long numbers[] = {j->sidechain, j->input, j->output, write_5m, write_1h, j->cache_read};
        for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
            put(t, ",", 1);
            put_int(t, numbers[i]);
        }
        put(t, ",", 1);
        if (cost == Py_None)
            put_str(t, "null");
        else
            put_double(t, PyFloat_AS_DOUBLE(cost));
        put(t, "],", 2);
        Py_DECREF(cost);
        judged_clear(j);
        if (bad) return -1;
        if (t->failed) {
            PyErr_NoMemory();
            return -1;
        }
        scan->usage_lines++;
        return 0;
    }
    PyObject *row = Py_BuildValue("(NNNNiLLLLLN)", j->key, j->ts, j->session, j->model, j->sidechain, j->input,
                                  j->output, write_5m, write_1h, j->cache_read, cost);
    j->key = j->ts = j->session = j->model = NULL;
    if (!row) return -1;
    int appended = PyList_Append(scan->rows, row);
    Py_DECREF(row);
    if (appended < 0) return -1;
    scan->usage_lines++;
    return 0;
}

/* Two bytes of a mark that plain text and JSON rarely have (those not among the most
 * common, latest in the mark first), as offsets a < b: find_mark's filter. */
static void rare_pair(const unsigned char *mark, size_t n, size_t *a, size_t *b) {
    static const char common[] = " etaoinsrhldcumfpgw\":,{}[]0123456789.";
    size_t best[2] = {0, n - 1};
    int rank[2] = {-1, -1};
    for (size_t i = 0; i < n; i++) {
        const char *at = mark[i] ? strchr(common, mark[i]) : NULL;
        int r = at ? (int)(sizeof common - (size_t)(at - common)) : 0; /* 0: rare; higher: more common */
        int score = 1000 - r;
        if (score >= rank[0]) {
            best[1] = best[0], rank[1] = rank[0];
            best[0] = i, rank[0] = score;
        } else if (score >= rank[1]) {
            best[1] = i, rank[1] = score;
        }
    }
    *a = best[0] < best[1] ? best[0] : best[1];
    *b = best[0] < best[1] ? best[1] : best[0];
}

/* The first of the candidate positions from + (each set bit of *mask*) where the whole
 * mark is, or NULL. */
static inline ptr first_whole(ptr from, unsigned mask, const unsigned char *mark, size_t n) {
    while (mask) {
        unsigned bit = (unsigned)__builtin_ctz(mask);
        if (memcmp(from + bit, mark, n) == 0) return from + bit;
        mask &= mask - 1;
    }
    return NULL;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
/* find_mark's filter 32 positions at a time, for CPUs with AVX2 (checked at run time). */
__attribute__((target("avx2"))) static ptr find_mark_avx2(ptr from, ptr end, const unsigned char *mark, size_t n,
                                                          size_t a, size_t b) {
    const __m256i at_a = _mm256_set1_epi8((char)mark[a]), at_b = _mm256_set1_epi8((char)mark[b]);
    while (end - from >= (Py_ssize_t)(n + 31)) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(from + a));
        __m256i y = _mm256_loadu_si256((const __m256i *)(from + b));
        unsigned mask = (unsigned)_mm256_movemask_epi8(_mm256_and_si256(_mm256_cmpeq_epi8(x, at_a),
                                                                         _mm256_cmpeq_epi8(y, at_b)));
        ptr hit = mask ? first_whole(from, mask, mark, n) : NULL;
        if (hit) return hit;
        from += 32;
    }
    return from; /* not found before here: the caller goes on from this position */
}
#endif

static int has_avx2 = -1;

/* memmem, faster for our marks: 16 (or, with AVX2, 32) positions at a time are tested for
 * two rare bytes of the mark at their offsets (rare_pair), and only those with both are
 * compared whole (W. Mula's filter; plain memmem where there is no SSE2). */
static ptr find_mark(ptr from, ptr end, const unsigned char *mark, size_t n, size_t a, size_t b) {
#ifdef HAVE_AVX2_PATH
    if (has_avx2 < 0) {
        __builtin_cpu_init();
        /* AIKI_HOOKS_SCANNER_SSE2=1: the 16-byte path (the tests compare the two) */
        has_avx2 = __builtin_cpu_supports("avx2") && !getenv("AIKI_HOOKS_SCANNER_SSE2") ? 1 : 0;
    }
    if (has_avx2 && n >= 2 && a < b) {
        ptr hit = find_mark_avx2(from, end, mark, n, a, b);
        if (hit + n <= end && memcmp(hit, mark, n) == 0) return hit;
        from = hit; /* the tail: the 16-byte loop and memmem below */
    }
#endif
#ifdef __SSE2__
    if (n >= 2 && a < b) {
        const __m128i at_a = _mm_set1_epi8((char)mark[a]), at_b = _mm_set1_epi8((char)mark[b]);
        while (end - from >= (Py_ssize_t)(n + 15)) {
            __m128i x = _mm_loadu_si128((const __m128i *)(from + a));
            __m128i y = _mm_loadu_si128((const __m128i *)(from + b));
            unsigned mask = (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(x, at_a),
                                                                       _mm_cmpeq_epi8(y, at_b)));
            ptr hit = mask ? first_whole(from, mask, mark, n) : NULL;
            if (hit) return hit;
            from += 16;
        }
    }
#endif
    if (from >= end) return NULL;
    return memmem(from, (size_t)(end - from), mark, n);
}

/* Each line of base[:end] holding *mark*, in order: usage lines judged (and decided,
 * while Python has not taken over), other lines as (start, stop, kind) items. */
static int each_line(Scan *scan, ptr base, Py_ssize_t end, const Py_buffer *mark, int kind) {
    Py_ssize_t from = 0;
    size_t a, b;
    rare_pair(mark->buf, (size_t)mark->len, &a, &b);
    while (from < end) {
        ptr hit = find_mark(base + from, base + end, mark->buf, (size_t)mark->len, a, b);
        if (!hit) break;
        ptr newline_after = memchr(hit, '\n', (size_t)(base + end - hit));
        if (!newline_after) break; /* an unfinished line: never the case when end follows a newline */
        ptr newline_before = hit > base ? memrchr(base, '\n', (size_t)(hit - base)) : NULL;
        Py_ssize_t start = newline_before ? newline_before - base + 1 : 0;
        Py_ssize_t stop = newline_after - base;
        from = stop + 1;
        PyObject *item;
        if (kind == ROW) {
            Judged j;
            int deciding = scan->seen && !scan->handed_over;
            if (judge_line(base, start, stop, &j, deciding ? scan->seen : NULL) < 0) return -1;
            if (j.kind == DUPLICATE) { /* a repeat of a response: counted once, as in ccusage */
                scan->usage_lines++;
                continue;
            }
            if (j.kind == SKIP && deciding) continue;
            if (j.kind == ROW && scan->seen && !scan->handed_over) {
                int verdict = decide(scan, &j, start);
                if (verdict < 0) {
                    judged_clear(&j);
                    return -1;
                }
                if (verdict == 0) continue;
            }
            if (j.kind == FALLBACK || j.kind == ROW) scan->handed_over = 1;
            item = judged_item(&j, start, stop);
        } else {
            item = short_item(start, stop, kind);
        }
        if (!item || PyList_Append(scan->items, item) < 0) {
            Py_XDECREF(item);
            return -1;
        }
        Py_DECREF(item);
    }
    return 0;
}

static PyObject *scan_usage(PyObject *self, PyObject *args) {
    Py_buffer buffer, mark, other = {0};
    Py_ssize_t end, file_id = 0, base_offset = 0;
    PyObject *seen = NULL, *rows = NULL, *book = NULL, *resolve = NULL;
    if (!PyArg_ParseTuple(args, "y*ny*|y*O!OnnO!O", &buffer, &end, &mark, &other, &PySet_Type, &seen, &rows,
                          &file_id, &base_offset, &PyDict_Type, &book, &resolve))
        return NULL;
    PyObject *result = NULL;
    Scan scan;
    memset(&scan, 0, sizeof scan);
    if (end < 0 || end > buffer.len || mark.len == 0 || (other.obj && other.len == 0) || (seen && !resolve) ||
        (rows && !PyList_Check(rows) && !PyByteArray_Check(rows))) {
        PyErr_SetString(PyExc_ValueError, "end outside the buffer, an empty mark, prices missing, or rows "
                                          "neither a list nor a bytearray");
        goto done;
    }
    scan.items = PyList_New(0);
    if (!scan.items) goto done;
    scan.seen = seen, scan.rows = rows, scan.file_id = file_id, scan.base_offset = base_offset;
    scan.prices.book = book, scan.prices.resolve = resolve;
    if (each_line(&scan, buffer.buf, end, &mark, ROW) < 0 ||
        (other.obj && each_line(&scan, buffer.buf, end, &other, OTHER) < 0)) {
        Py_CLEAR(scan.items);
        goto done;
    }
    if (scan.json.len) { /* the rows' JSON, after what the bytearray holds */
        Py_ssize_t had = PyByteArray_GET_SIZE(rows);
        if (PyByteArray_Resize(rows, had + (Py_ssize_t)scan.json.len) < 0) {
            Py_CLEAR(scan.items);
            goto done;
        }
        memcpy(PyByteArray_AS_STRING(rows) + had, scan.json.data, scan.json.len);
    }
    result = seen ? Py_BuildValue("(nN)", scan.usage_lines, scan.items) : scan.items;
done:
    PyMem_Free(scan.json.data);
    PyBuffer_Release(&buffer);
    PyBuffer_Release(&mark);
    if (other.obj) PyBuffer_Release(&other);
    return result;
}

/* ------------------------------------------------------------------ Window cells */

static int add_to(PyObject *cell, Py_ssize_t i, PyObject *value) {
    PyObject *sum = PyNumber_Add(PyList_GET_ITEM(cell, i), value);
    if (!sum) return -1;
    PyList_SetItem(cell, i, sum); /* steals sum, drops the old value */
    return 0;
}

/* add_cells(rows, starts, names, since, cells) -> list: report.Window.add's sums, in C.
 * Each row (key, ts, session, model, sidechain, input, output, write_5m, write_1h, read,
 * cost) at or after *since* is summed into cells[(day, model)], a list [input, output,
 * cache writes, cache reads, cost, unpriced tokens, messages], with the same Python
 * additions in the same order as Window.add. The day is names[i] for the last starts[i]
 * <= ts; rows after the last day (a clock ahead) are returned for Window.add to place. */
static PyObject *add_cells(PyObject *self, PyObject *args) {
    PyObject *rows, *starts, *names, *cells;
    double since;
    if (!PyArg_ParseTuple(args, "OO!O!dO!", &rows, &PyList_Type, &starts, &PyList_Type, &names, &since,
                          &PyDict_Type, &cells))
        return NULL;
    Py_ssize_t days = PyList_GET_SIZE(names);
    if (PyList_GET_SIZE(starts) != days + 1) {
        PyErr_SetString(PyExc_ValueError, "starts must have one more entry than names");
        return NULL;
    }
    double *bounds = PyMem_Malloc(sizeof(double) * (size_t)(days + 1));
    PyObject *seq = PySequence_Fast(rows, "rows must be a sequence");
    PyObject *left = PyList_New(0), *cell = NULL, *cell_model = NULL, *one = PyLong_FromLong(1);
    if (!bounds || !seq || !left || !one) goto failed;
    for (Py_ssize_t i = 0; i <= days; i++) {
        bounds[i] = PyFloat_AsDouble(PyList_GET_ITEM(starts, i));
        if (bounds[i] == -1.0 && PyErr_Occurred()) goto failed;
    }
    Py_ssize_t cell_day = -1;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *row = items[r];
        PyObject *fast = PySequence_Fast(row, "a row must be a sequence");
        if (!fast) goto failed;
        if (PySequence_Fast_GET_SIZE(fast) != 11) {
            Py_DECREF(fast);
            PyErr_SetString(PyExc_ValueError, "a row must have 11 fields");
            goto failed;
        }
        PyObject **f = PySequence_Fast_ITEMS(fast);
        double ts = PyFloat_AsDouble(f[1]);
        if (ts == -1.0 && PyErr_Occurred()) {
            Py_DECREF(fast);
            goto failed;
        }
        if (ts < since) {
            Py_DECREF(fast);
            continue;
        }
        /* bisect_right(starts, ts) - 1 */
        Py_ssize_t lo = 0, hi = days + 1;
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) / 2;
            if (ts < bounds[mid]) hi = mid; else lo = mid + 1;
        }
        Py_ssize_t day = lo - 1;
        if (day >= days) { /* after today: Window.add places it */
            int appended = PyList_Append(left, row);
            Py_DECREF(fast);
            if (appended < 0) goto failed;
            continue;
        }
        PyObject *model = f[3];
        int same = 0;
        if (cell && day == cell_day) {
            same = model == cell_model ? 1 : PyObject_RichCompareBool(model, cell_model, Py_EQ);
            if (same < 0) {
                Py_DECREF(fast);
                goto failed;
            }
        }
        if (!same) {
            PyObject *key = PyTuple_Pack(2, PyList_GET_ITEM(names, day), model);
            if (!key) {
                Py_DECREF(fast);
                goto failed;
            }
            cell = PyDict_GetItemWithError(cells, key); /* borrowed: the dict keeps it */
            if (!cell) {
                if (PyErr_Occurred()) {
                    Py_DECREF(key);
                    Py_DECREF(fast);
                    goto failed;
                }
                cell = Py_BuildValue("[iiiidii]", 0, 0, 0, 0, 0.0, 0, 0);
                int stored = cell ? PyDict_SetItem(cells, key, cell) : -1;
                Py_XDECREF(cell); /* the dict holds it */
                if (stored < 0) {
                    Py_DECREF(key);
                    Py_DECREF(fast);
                    goto failed;
                }
            }
            Py_DECREF(key);
            Py_XSETREF(cell_model, Py_NewRef(model));
            cell_day = day;
        }
        /* cell[0] += input; cell[1] += output; cell[2] += w5 + w1; cell[3] += read;
         * cost None: cell[5] += input + output + w5 + w1 + read, else cell[4] += cost; cell[6] += 1 */
        PyObject *writes = PyNumber_Add(f[7], f[8]);
        int bad = !writes || add_to(cell, 0, f[5]) < 0 || add_to(cell, 1, f[6]) < 0 || add_to(cell, 2, writes) < 0 ||
                  add_to(cell, 3, f[9]) < 0;
        Py_XDECREF(writes);
        if (!bad) {
            if (f[10] == Py_None) {
                PyObject *a = PyNumber_Add(f[5], f[6]), *b = a ? PyNumber_Add(a, f[7]) : NULL;
                PyObject *c = b ? PyNumber_Add(b, f[8]) : NULL, *d = c ? PyNumber_Add(c, f[9]) : NULL;
                bad = !d || add_to(cell, 5, d) < 0;
                Py_XDECREF(a);
                Py_XDECREF(b);
                Py_XDECREF(c);
                Py_XDECREF(d);
            } else {
                bad = add_to(cell, 4, f[10]) < 0;
            }
        }
        bad = bad || add_to(cell, 6, one) < 0;
        Py_DECREF(fast);
        if (bad) goto failed;
    }
    Py_XDECREF(cell_model);
    Py_DECREF(one);
    Py_DECREF(seq);
    PyMem_Free(bounds);
    return left;

failed:
    Py_XDECREF(cell_model);
    Py_XDECREF(one);
    Py_XDECREF(seq);
    Py_XDECREF(left);
    PyMem_Free(bounds);
    return NULL;
}

/* keep_freed_memory(bytes): glibc keeps freed blocks up to this size for reuse instead of
 * unmapping them (a first scan's worker, see scan._worker_start). */
static PyObject *keep_freed_memory(PyObject *self, PyObject *arg) {
    long bytes = PyLong_AsLong(arg);
    if (bytes == -1 && PyErr_Occurred()) return NULL;
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, (int)bytes);
    mallopt(M_TRIM_THRESHOLD, (int)bytes);
#endif
    Py_RETURN_NONE;
}

/* load_rows(data) -> list | None: a chunk's rows (a JSON array of flat arrays of strings,
 * numbers, null, true and false, as scan/store write them), as orjson.loads gives them;
 * None for anything else (whitespace, an escape in a string, nesting, a long number...),
 * which the caller then reads with a general JSON parser. Faster than one (a repeated
 * session or model string is made once per chunk, not once per row), and it spares the
 * parent process orjson's import (which imports uuid and dataclasses: ~15 ms). */
#define LOAD_COLUMNS 16
static PyObject *load_string(ptr *at, ptr end, PyObject **last, ptr *last_s, Py_ssize_t *last_n) {
    ptr p = *at + 1, s = p;
    for (;;) {
        if (p >= end) return NULL;
        if (*p == '"') break;
        if (*p == '\\' || *p < 0x20) return NULL;
        p++;
    }
    Py_ssize_t n = p - s;
    *at = p + 1;
    if (*last && *last_n == n && memcmp(*last_s, s, (size_t)n) == 0) {
        Py_INCREF(*last);
        return *last;
    }
    PyObject *str = PyUnicode_DecodeUTF8((const char *)s, n, NULL);
    if (!str) {
        PyErr_Clear();
        return NULL;
    }
    Py_XDECREF(*last);
    Py_INCREF(str);
    *last = str, *last_s = s, *last_n = n;
    return str;
}

static PyObject *load_number(ptr *at, ptr end) {
    ptr p = *at;
    ptr stop = scan_number(p, end, NULL);
    if (!stop) return NULL;
    *at = stop;
    int fraction = 0;
    for (ptr q = p; q < stop; q++)
        if (*q == '.' || *q == 'e' || *q == 'E') fraction = 1;
    if (!fraction) { /* scan_number allows at most MAX_INT_DIGITS digits */
        long long value = 0;
        int negative = *p == '-';
        for (ptr q = p + negative; q < stop; q++) value = value * 10 + (*q - '0');
        return PyLong_FromLongLong(negative ? -value : value);
    }
    /* Digits, a point, at most 22 digits after it, all of them at most 2**53 as one
     * integer m: the value is m / 10**k, one correctly rounded division of two exact
     * doubles, which is the correctly rounded value of the decimal (strtod's own fast
     * path, Clinger 1990). The timestamps the scanner writes are all of this form. */
    static const double powers[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    unsigned long long mantissa = 0;
    int scale = -1, simple = *p != '-';
    for (ptr q = p; simple && q < stop; q++) {
        if (*q == '.') {
            scale = 0;
        } else if (*q >= '0' && *q <= '9' && mantissa < (1ULL << 53) / 10 + 1) {
            mantissa = mantissa * 10 + (unsigned)(*q - '0');
            if (scale >= 0) scale++;
        } else {
            simple = 0;  /* an exponent, or too many digits */
        }
    }
    if (simple && scale >= 0 && scale <= 22 && mantissa <= (1ULL << 53))
        return PyFloat_FromDouble((double)mantissa / powers[scale]);
    char text[64];
    if (stop - p >= (Py_ssize_t)sizeof text) return NULL;
    memcpy(text, p, (size_t)(stop - p));
    text[stop - p] = 0;
    char *parsed_to;
    double value = PyOS_string_to_double(text, &parsed_to, NULL);
    if (value == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return NULL;
    }
    if (*parsed_to || !isfinite(value)) return NULL; /* out of range: the general parser's call */
    return PyFloat_FromDouble(value);
}

static PyObject *load_rows(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    ptr p = view.buf, end = p + view.len;
    PyObject *rows = PyList_New(0), *row = NULL;
    PyObject *last[LOAD_COLUMNS] = {NULL};
    ptr last_s[LOAD_COLUMNS];
    Py_ssize_t last_n[LOAD_COLUMNS];
    int ok = 0;
    if (!rows) goto done;
    if (p >= end || *p++ != '[') goto done;
    if (p < end && *p == ']') {
        ok = ++p == end;
        goto done;
    }
    for (;;) {
        if (p >= end || *p++ != '[') goto done;
        row = PyList_New(0);
        if (!row) goto error;
        for (int column = 0;; column++) {
            if (p >= end || column >= LOAD_COLUMNS) goto done;
            PyObject *item;
            if (*p == '"') {
                item = load_string(&p, end, &last[column], &last_s[column], &last_n[column]);
            } else if (*p == 'n' && end - p >= 4 && memcmp(p, "null", 4) == 0) {
                item = Py_NewRef(Py_None), p += 4;
            } else if (*p == 't' && end - p >= 4 && memcmp(p, "true", 4) == 0) {
                item = Py_NewRef(Py_True), p += 4;
            } else if (*p == 'f' && end - p >= 5 && memcmp(p, "false", 5) == 0) {
                item = Py_NewRef(Py_False), p += 5;
            } else {
                item = load_number(&p, end);
            }
            if (!item) {
                if (PyErr_Occurred()) goto error;
                goto done;
            }
            int failed = PyList_Append(row, item);
            Py_DECREF(item);
            if (failed) goto error;
            if (p < end && *p == ',') {
                p++;
                continue;
            }
            if (p < end && *p == ']') {
                p++;
                break;
            }
            goto done;
        }
        int failed = PyList_Append(rows, row);
        Py_CLEAR(row);
        if (failed) goto error;
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p < end && *p == ']') {
            ok = ++p == end;
            goto done;
        }
        goto done;
    }
error:
    ok = -1;
done:
    Py_XDECREF(row);
    for (int i = 0; i < LOAD_COLUMNS; i++) Py_XDECREF(last[i]);
    PyBuffer_Release(&view);
    if (ok == 1) return rows;
    Py_XDECREF(rows);
    if (ok == -1 || PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"load_rows", load_rows, METH_O, "load_rows(data) -> list | None: a chunk's rows (see the source)."},
    {"keep_freed_memory", keep_freed_memory, METH_O, "keep_freed_memory(bytes): tune glibc malloc (a worker)."},
    {"add_cells", add_cells, METH_VARARGS, "add_cells(rows, starts, names, since, cells) -> rows left (see source)."},
    {"scan_usage", scan_usage, METH_VARARGS,
     "scan_usage(buffer, end, mark[, other_mark]) -> list: the usage lines of buffer[:end] (see the source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scanner", "The cold scan's inner loop (see aiki_hooks/costs/scan.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__scanner(void) {
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddIntConstant(m, "ROW", ROW) < 0 || PyModule_AddIntConstant(m, "FALLBACK", FALLBACK) < 0 ||
        PyModule_AddIntConstant(m, "SKIP", SKIP) < 0 || PyModule_AddIntConstant(m, "OTHER", OTHER) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

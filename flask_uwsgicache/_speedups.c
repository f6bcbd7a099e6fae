/* The hot paths of flask_uwsgicache in C: KeyValueCache.get and .set, and the part of
 * Envelope.decode and Envelope.encode they run for the common entries.
 *
 * What is left of the gap between the cache and a bare uwsgi.cache_get + pickle.loads
 * is Python frames, so this module does what the Python code does for the common case
 * and hands everything else to that code: a key not in the storage-key memo, an entry
 * whose reader is missing or whose MAC is not memoised, a payload that does not load,
 * a value that is not a dict or a list, a write uWSGI refused... C never rejects an
 * entry, logs or raises a cache error itself; the Python code decides, so semantics
 * stay those of the Python implementation (docs/operations.rst, "The C speedups").
 *
 * What a cache sets once (its memo of storage keys, reader, envelope and backend) is
 * held by its FastPaths, made again whenever KeySpaces changes one; everything that
 * changes (the default timeout, the envelope's readers, verified entries and clock,
 * the backend's "full" state) is read on every call: tests replace the clock, the
 * memo of verified entries is cleared in place.
 *
 * Entries come from shared memory any process can write to (or from Redis): every
 * length is checked before a byte is read.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

/* envelope.py's TRAILER ("<dB3s": expires_at, flags, LEAD), SIGNED flag and MAC size.
 * Exposed to Python, which checks them against envelope.py at import. */
#define TRAILER_SIZE 12
#define LEAD_SIZE 3
#define SIGNED_FLAG 0x10
#define MAC_SIZE 16

/* Set once by configure(): envelope.MISSING, envelope.LEAD, envelope.VIEW_FROM,
 * timeouts.MAX_TIMEOUT and pickle.dumps. */
static PyObject *missing = NULL;
static unsigned char lead[LEAD_SIZE];
static Py_ssize_t view_from = 0;
static long long max_timeout = 0;
static PyObject *pickle_dumps = NULL;

/* Interned attribute and keyword names. */
static PyObject *s_readers,
    *s_verified, *s_clock, *s_value, *s_default_timeout, *s_pickle_protocol,
    *s_serializer, *s_tag, *s_mac_base, *s_encode, *s_decode, *s_full_until,
    *s_updates_full_until, *s_max_value_size, *s_no_expiry, *s_cache_name, *s_store,
    *s_lookup_key, *s_storage_key, *s_copy, *s_update, *s_digest, *s_default, *s_timeout,
    *s_set;

/* -- small helpers ------------------------------------------------------------------ */

static double
unpack_double_le(const unsigned char *p)
{
    /* struct's "<d" on an IEEE 754 platform (every platform CPython supports). */
    uint64_t bits = 0;
    for (int i = 7; i >= 0; i--) {
        bits = (bits << 8) | p[i];
    }
    double value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static void
pack_trailer(unsigned char *p, double expires_at, unsigned char flags)
{
    uint64_t bits;
    memcpy(&bits, &expires_at, sizeof bits);
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(bits >> (8 * i));
    }
    p[8] = flags;
    memcpy(p + 9, lead, LEAD_SIZE);
}

/* obj's __dict__ (a new reference), or NULL (no error) for an object without one. */
static PyObject *
instance_dict(PyObject *obj)
{
    PyObject *dict = PyObject_GenericGetDict(obj, NULL);
    if (dict == NULL || !PyDict_Check(dict)) {
        PyErr_Clear();
        Py_XDECREF(dict);
        return NULL;
    }
    return dict;
}

/* obj.name (a new reference): every attribute read here is a plain instance attribute,
 * and looking it up in the instance dict costs a third of PyObject_GetAttr, which
 * matters when a call reads a dozen. Anything else (a class attribute, a property, an
 * object without a dict) goes through PyObject_GetAttr. */
static PyObject *
attr(PyObject *dict, PyObject *obj, PyObject *name)
{
    if (dict != NULL) {
        PyObject *found = PyDict_GetItemWithError(dict, name);
        if (found != NULL) {
            return Py_NewRef(found);
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    return PyObject_GetAttr(obj, name);
}

/* func(self, *args, **kwargs) from a vectorcall's arguments: the Python
 * implementation, called when the call is not the fast path's. */
static PyObject *
call_python(PyObject *func, PyObject *self, PyObject *const *args, size_t nargsf,
            PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t total = nargs + (kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0);
    PyObject *small[8];
    PyObject **stack = small;
    if (total + 1 > (Py_ssize_t)(sizeof small / sizeof small[0])) {
        stack = PyMem_Malloc((size_t)(total + 1) * sizeof(PyObject *));
        if (stack == NULL) {
            return PyErr_NoMemory();
        }
    }
    stack[0] = self;
    if (total > 0) {
        memcpy(stack + 1, args, (size_t)total * sizeof(PyObject *));
    }
    PyObject *result = PyObject_Vectorcall(func, stack, (size_t)(nargs + 1), kwnames);
    if (stack != small) {
        PyMem_Free(stack);
    }
    return result;
}

/* True (1) if the error set is an Exception (what the Python code's "except
 * Exception" handles), after clearing it; 0 (error kept) for KeyboardInterrupt and
 * the like, which must propagate. */
static int
clear_exception(void)
{
    if (PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();
        return 1;
    }
    return 0;
}

/* -- decode ------------------------------------------------------------------------- */

/* Envelope.decode's fast path. Returns 1 with *out set (the value, or a new reference
 * to MISSING when expired), 0 when the Python decoder must run instead (nothing set,
 * no error), -1 on an error to propagate. */
static int
decode_fast(PyObject *envelope, PyObject *key, PyObject *entry, PyObject **out)
{
    if (!PyBytes_CheckExact(entry)) {
        return 0;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(entry);
    if (size < TRAILER_SIZE) {
        return 0; /* too short: rejected (or a counter entry) in Python */
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(entry);
    const unsigned char *trailer = data + size - TRAILER_SIZE;
    int result = 0;
    PyObject *readers = NULL, *tail = NULL, *reader = NULL, *verified = NULL;
    PyObject *clock = NULL, *now = NULL, *payload = NULL, *value = NULL;
    PyObject *envelope_dict = instance_dict(envelope);

    readers = attr(envelope_dict, envelope, s_readers);
    if (readers == NULL) {
        goto error;
    }
    if (!PyDict_CheckExact(readers)) {
        goto done;
    }
    /* The flags byte and LEAD, the key of the readers dict. */
    tail = PyBytes_FromStringAndSize((const char *)trailer + 8, 4);
    if (tail == NULL) {
        goto error;
    }
    reader = PyDict_GetItemWithError(readers, tail);
    if (reader == NULL) {
        if (PyErr_Occurred()) {
            goto error;
        }
        goto done; /* a counter entry, or one to reject */
    }
    Py_INCREF(reader); /* readers may change while the loader runs */
    if (!PyTuple_CheckExact(reader) || PyTuple_GET_SIZE(reader) != 3) {
        goto done;
    }
    PyObject *load = PyTuple_GET_ITEM(reader, 0);
    PyObject *end = PyTuple_GET_ITEM(reader, 1);
    PyObject *verify = PyTuple_GET_ITEM(reader, 2);
    if (verify == Py_True) {
        /* Only an entry equal to one verified before skips the MAC; checking one is
         * Python's job (it logs what it rejects). */
        verified = attr(envelope_dict, envelope, s_verified);
        if (verified == NULL) {
            goto error;
        }
        if (!PyDict_CheckExact(verified)) {
            goto done;
        }
        PyObject *known = PyDict_GetItemWithError(verified, key);
        if (known == NULL) {
            if (PyErr_Occurred()) {
                goto error;
            }
            goto done;
        }
        if (known != entry
            && (!PyBytes_CheckExact(known) || PyBytes_GET_SIZE(known) != size
                || memcmp(PyBytes_AS_STRING(known), data, (size_t)size) != 0)) {
            goto done;
        }
    }
    else if (verify != Py_False) {
        goto done;
    }

    /* The payload's end, checked before the clock is read: an entry shorter than its
     * tail, or an end that does not fit, is the Python decoder's case. */
    Py_ssize_t stop = 0;
    if (end != Py_None) {
        if (!PyLong_CheckExact(end)) {
            goto done;
        }
        stop = PyLong_AsSsize_t(end);
        if (stop == -1 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
                goto error;
            }
            PyErr_Clear();
            goto done;
        }
        if (stop >= 0 || size + stop < 0) {
            goto done;
        }
    }

    double expires_at = unpack_double_le(trailer);
    if (expires_at != 0.0) { /* NaN too, as "if expires_at" in Python */
        clock = attr(envelope_dict, envelope, s_clock);
        if (clock == NULL) {
            goto error;
        }
        now = PyObject_CallNoArgs(clock);
        if (now == NULL) {
            goto error;
        }
        int expired;
        if (PyFloat_CheckExact(now)) {
            expired = expires_at <= PyFloat_AS_DOUBLE(now);
        }
        else { /* another clock: Python's comparison */
            PyObject *when = PyFloat_FromDouble(expires_at);
            if (when == NULL) {
                goto error;
            }
            expired = PyObject_RichCompareBool(when, now, Py_LE);
            Py_DECREF(when);
            if (expired < 0) {
                goto error;
            }
        }
        if (expired) {
            *out = Py_NewRef(missing);
            result = 1;
            goto done;
        }
    }

    if (end == Py_None) { /* a pickle: loaded from the entry itself */
        value = PyObject_CallOneArg(load, entry);
    }
    else {
        if (size < view_from) { /* one small copy is cheaper than a memoryview */
            payload = PyBytes_FromStringAndSize((const char *)data, size + stop);
        }
        else { /* memoryview(entry)[:end], as in Python: a large payload is not copied */
            PyObject *view = PyMemoryView_FromObject(entry);
            if (view == NULL) {
                goto error;
            }
            PyObject *slice = PySlice_New(NULL, end, NULL);
            if (slice == NULL) {
                Py_DECREF(view);
                goto error;
            }
            payload = PyObject_GetItem(view, slice);
            Py_DECREF(slice);
            Py_DECREF(view);
        }
        if (payload == NULL) {
            goto error;
        }
        value = PyObject_CallOneArg(load, payload);
    }
    if (value == NULL) {
        /* A payload that does not load is rejected (and logged) by the Python
         * decoder, which loads it again. */
        if (clear_exception()) {
            goto done;
        }
        goto error;
    }
    *out = value;
    value = NULL;
    result = 1;
    goto done;

error:
    result = -1;
done:
    Py_XDECREF(envelope_dict);
    Py_XDECREF(readers);
    Py_XDECREF(tail);
    Py_XDECREF(reader);
    Py_XDECREF(verified);
    Py_XDECREF(clock);
    Py_XDECREF(now);
    Py_XDECREF(payload);
    Py_XDECREF(value);
    return result;
}

/* -- encode ------------------------------------------------------------------------- */

/* The entry for a dict or list pickled by the plain pickle serializer, as
 * Envelope.encode makes it. Returns 1 with *out set, 0 when Envelope.encode must run
 * (another kind or serializer, a value pickle refuses), -1 on an error. */
static int
encode_fast(PyObject *envelope, PyObject *key, PyObject *value, double expires_at,
            PyObject **out)
{
    PyTypeObject *kind = Py_TYPE(value);
    if ((kind != &PyDict_Type && kind != &PyList_Type) || !PyBytes_CheckExact(key)) {
        return 0;
    }
    int result = 0;
    PyObject *protocol = NULL, *serializer = NULL, *tag_object = NULL, *mac_base = NULL;
    PyObject *payload = NULL, *mac = NULL, *signed_tail = NULL, *digest = NULL;
    PyObject *answer = NULL;
    PyObject *envelope_dict = instance_dict(envelope);

    protocol = attr(envelope_dict, envelope, s_pickle_protocol);
    if (protocol == NULL) {
        goto error;
    }
    /* 0: another serializer than plain pickle. */
    if (!PyLong_CheckExact(protocol) || PyObject_Not(protocol)) {
        goto done;
    }
    serializer = attr(envelope_dict, envelope, s_serializer);
    if (serializer == NULL) {
        goto error;
    }
    tag_object = PyObject_GetAttr(serializer, s_tag);
    if (tag_object == NULL) {
        goto error;
    }
    if (!PyLong_CheckExact(tag_object)) {
        goto done;
    }
    long tag = PyLong_AsLong(tag_object);
    if (tag == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        goto done;
    }
    if (tag < 0 || tag > 0xFF) {
        goto done; /* struct.pack refuses it, in Python */
    }
    mac_base = attr(envelope_dict, envelope, s_mac_base);
    if (mac_base == NULL) {
        goto error;
    }

    PyObject *dumps_args[2] = {value, protocol};
    payload = PyObject_Vectorcall(pickle_dumps, dumps_args, 2, NULL);
    if (payload == NULL) {
        /* Envelope.encode pickles again and raises SerializationError. */
        if (clear_exception()) {
            goto done;
        }
        goto error;
    }
    if (!PyBytes_CheckExact(payload)) {
        goto done;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(payload);
    unsigned char trailer[TRAILER_SIZE];
    const char *mac_bytes = NULL;
    Py_ssize_t mac_size = 0;

    if (mac_base == Py_None) {
        pack_trailer(trailer, expires_at, (unsigned char)tag);
    }
    else {
        /* Envelope._mac: a copy of the keyed BLAKE2b, the payload, then the trailer,
         * the key and the key's length (4 bytes, little endian) last. */
        pack_trailer(trailer, expires_at, (unsigned char)(tag | SIGNED_FLAG));
        Py_ssize_t key_size = PyBytes_GET_SIZE(key);
        if (key_size > 0xFFFFFFFFLL) {
            goto done; /* int.to_bytes(4) raises OverflowError, in Python */
        }
        mac = PyObject_CallMethodNoArgs(mac_base, s_copy);
        if (mac == NULL) {
            goto error;
        }
        PyObject *updated = PyObject_CallMethodOneArg(mac, s_update, payload);
        if (updated == NULL) {
            goto error;
        }
        Py_DECREF(updated);
        signed_tail = PyBytes_FromStringAndSize(NULL, TRAILER_SIZE + key_size + 4);
        if (signed_tail == NULL) {
            goto error;
        }
        unsigned char *p = (unsigned char *)PyBytes_AS_STRING(signed_tail);
        memcpy(p, trailer, TRAILER_SIZE);
        memcpy(p + TRAILER_SIZE, PyBytes_AS_STRING(key), (size_t)key_size);
        for (int i = 0; i < 4; i++) {
            p[TRAILER_SIZE + key_size + i] = (unsigned char)((uint64_t)key_size >> (8 * i));
        }
        updated = PyObject_CallMethodOneArg(mac, s_update, signed_tail);
        if (updated == NULL) {
            goto error;
        }
        Py_DECREF(updated);
        digest = PyObject_CallMethodNoArgs(mac, s_digest);
        if (digest == NULL) {
            goto error;
        }
        if (!PyBytes_CheckExact(digest)) {
            goto done;
        }
        mac_bytes = PyBytes_AS_STRING(digest);
        mac_size = PyBytes_GET_SIZE(digest);
    }
    if (size > PY_SSIZE_T_MAX - mac_size - TRAILER_SIZE) {
        PyErr_NoMemory();
        goto error;
    }
    answer = PyBytes_FromStringAndSize(NULL, size + mac_size + TRAILER_SIZE);
    if (answer == NULL) {
        goto error;
    }
    char *p = PyBytes_AS_STRING(answer);
    memcpy(p, PyBytes_AS_STRING(payload), (size_t)size);
    if (mac_size > 0) {
        memcpy(p + size, mac_bytes, (size_t)mac_size);
    }
    memcpy(p + size + mac_size, trailer, TRAILER_SIZE);
    *out = answer;
    answer = NULL;
    result = 1;
    goto done;

error:
    result = -1;
done:
    Py_XDECREF(envelope_dict);
    Py_XDECREF(protocol);
    Py_XDECREF(serializer);
    Py_XDECREF(tag_object);
    Py_XDECREF(mac_base);
    Py_XDECREF(payload);
    Py_XDECREF(mac);
    Py_XDECREF(signed_tail);
    Py_XDECREF(digest);
    Py_XDECREF(answer);
    return result;
}

/* -- module functions: the envelope's paths, for the tests and the hot paths -------- */

PyDoc_STRVAR(decode_doc,
             "decode(envelope, key, entry)\n--\n\n"
             "Envelope.decode(key, entry), with the fast path in C.");

static PyObject *
speedups_decode(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "decode() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *value = NULL;
    int found = decode_fast(args[0], args[1], args[2], &value);
    if (found < 0) {
        return NULL;
    }
    if (found) {
        return value;
    }
    PyObject *method_args[3] = {args[0], args[1], args[2]};
    return PyObject_VectorcallMethod(s_decode, method_args,
                                     3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

PyDoc_STRVAR(encode_doc,
             "encode(envelope, key, value, expires_at)\n--\n\n"
             "Envelope.encode(key, value, expires_at), with the fast path in C.");

static PyObject *
speedups_encode(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "encode() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    if (PyFloat_CheckExact(args[3])) {
        PyObject *entry = NULL;
        int made = encode_fast(args[0], args[1], args[2], PyFloat_AS_DOUBLE(args[3]),
                               &entry);
        if (made < 0) {
            return NULL;
        }
        if (made) {
            return entry;
        }
    }
    PyObject *method_args[4] = {args[0], args[1], args[2], args[3]};
    return PyObject_VectorcallMethod(s_encode, method_args,
                                     4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

PyDoc_STRVAR(configure_doc,
             "configure(missing, lead, view_from, max_timeout, dumps)\n--\n\n"
             "Give the module envelope.py's MISSING, LEAD and VIEW_FROM, "
             "timeouts.MAX_TIMEOUT and pickle.dumps.");

static PyObject *
speedups_configure(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "configure() takes 5 arguments (%zd given)", nargs);
        return NULL;
    }
    /* This module's state is the process's, shared by every interpreter that imports
     * it (uWSGI mounts apps in sub-interpreters): once one has configured it, another
     * must not put its objects there, or the first would call into them. */
    if (missing != NULL && missing != args[0]) {
        Py_RETURN_FALSE;
    }
    if (!PyBytes_Check(args[1]) || PyBytes_GET_SIZE(args[1]) != LEAD_SIZE) {
        PyErr_SetString(PyExc_ValueError, "lead must be 3 bytes");
        return NULL;
    }
    Py_ssize_t new_view_from = PyLong_AsSsize_t(args[2]);
    if (new_view_from == -1 && PyErr_Occurred()) {
        return NULL;
    }
    long long new_max_timeout = PyLong_AsLongLong(args[3]);
    if (new_max_timeout == -1 && PyErr_Occurred()) {
        return NULL;
    }
    memcpy(lead, PyBytes_AS_STRING(args[1]), LEAD_SIZE);
    view_from = new_view_from;
    max_timeout = new_max_timeout;
    Py_XSETREF(missing, Py_NewRef(args[0]));
    Py_XSETREF(pickle_dumps, Py_NewRef(args[4]));
    Py_RETURN_TRUE;
}

/* -- FastPaths: one cache's get and set ---------------------------------------------- */

/* What a cache's get and set read on every call and only KeySpaces.space() changes
 * (it builds the fast paths of each key space once it is set up): held here rather
 * than looked up per call, which is what makes a miss cheaper in C than in Python.
 * Everything else (the default timeout, the envelope's clock, readers and memo, the
 * backend's state) is read on every call. */
typedef struct {
    PyObject_HEAD
    PyObject *cache;        /* the KeyValueCache whose methods these are */
    PyObject *python_get;   /* KeyValueCache.get, for every other case */
    PyObject *python_set;   /* KeyValueCache.set */
    PyObject *known_keys;   /* cache._known_keys, the memo of storage keys */
    PyObject *read;         /* cache._read */
    PyObject *read_name;    /* cache._read_name */
    PyObject *envelope;     /* cache.envelope */
    PyObject *backend;      /* cache.backend */
    PyObject *cache_update; /* uwsgi.cache_update when backend is a UWSGIBackend, or None */
} FastPaths;

static int
fastpaths_traverse(FastPaths *self, visitproc visit, void *arg)
{
    Py_VISIT(self->cache);
    Py_VISIT(self->python_get);
    Py_VISIT(self->python_set);
    Py_VISIT(self->known_keys);
    Py_VISIT(self->read);
    Py_VISIT(self->read_name);
    Py_VISIT(self->envelope);
    Py_VISIT(self->backend);
    Py_VISIT(self->cache_update);
    return 0;
}

static int
fastpaths_clear(FastPaths *self)
{
    Py_CLEAR(self->cache);
    Py_CLEAR(self->python_get);
    Py_CLEAR(self->python_set);
    Py_CLEAR(self->known_keys);
    Py_CLEAR(self->read);
    Py_CLEAR(self->read_name);
    Py_CLEAR(self->envelope);
    Py_CLEAR(self->backend);
    Py_CLEAR(self->cache_update);
    return 0;
}

static void
fastpaths_dealloc(FastPaths *self)
{
    PyObject_GC_UnTrack(self);
    fastpaths_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
fastpaths_init(FastPaths *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"cache", "python_get", "python_set", "known_keys", "read",
                            "read_name", "envelope", "backend", "cache_update", NULL};
    PyObject *cache, *python_get, *python_set, *known_keys, *read, *read_name;
    PyObject *envelope, *backend, *cache_update;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO!OOOOO:FastPaths", names, &cache,
                                     &python_get, &python_set, &PyDict_Type, &known_keys,
                                     &read, &read_name, &envelope, &backend,
                                     &cache_update)) {
        return -1;
    }
    if (missing == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "call configure() first");
        return -1;
    }
    /* get and set use the fields as borrowed references while they call out to
     * Python: a second __init__ must not replace them under a running call. */
    if (self->cache != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "FastPaths is initialised once");
        return -1;
    }
    Py_XSETREF(self->cache, Py_NewRef(cache));
    Py_XSETREF(self->python_get, Py_NewRef(python_get));
    Py_XSETREF(self->python_set, Py_NewRef(python_set));
    Py_XSETREF(self->known_keys, Py_NewRef(known_keys));
    Py_XSETREF(self->read, Py_NewRef(read));
    Py_XSETREF(self->read_name, Py_NewRef(read_name));
    Py_XSETREF(self->envelope, Py_NewRef(envelope));
    Py_XSETREF(self->backend, Py_NewRef(backend));
    Py_XSETREF(self->cache_update, Py_NewRef(cache_update));
    return 0;
}

/* The storage key of key in the memo (a new reference); NULL when it is not there
 * (or not a bytes), and for a key the memo cannot hold (unhashable): the Python code's
 * cases, which raise again any error cleared here. */
/* The remembered storage key of `key` (a new reference), or NULL: with an exception
 * set when hashing the key raised anything but TypeError (the Python methods catch
 * only that: an unhashable key is not a key), without one when it is not known. */
static PyObject *
known_key(FastPaths *self, PyObject *key)
{
    PyObject *storage_key = PyDict_GetItemWithError(self->known_keys, key);
    if (storage_key == NULL) {
        if (PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
        }
        return NULL;
    }
    if (!PyBytes_CheckExact(storage_key)) {
        return NULL;
    }
    return Py_NewRef(storage_key);
}

static int
is_keyword(PyObject *kwnames, Py_ssize_t index, PyObject *name)
{
    PyObject *given = PyTuple_GET_ITEM(kwnames, index);
    return given == name || PyUnicode_Compare(given, name) == 0;
}

static PyObject *
fastpaths_get(FastPaths *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *cache = self->cache;
    if (cache == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "this cache is gone");
        return NULL;
    }
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *key, *fallback = Py_None;
    if (kwnames == NULL && (nargs == 1 || nargs == 2)) {
        key = args[0];
        if (nargs == 2) {
            fallback = args[1];
        }
    }
    else if (kwnames != NULL && nargs == 1 && PyTuple_GET_SIZE(kwnames) == 1
             && is_keyword(kwnames, 0, s_default)) {
        key = args[0];
        fallback = args[1];
    }
    else {
        return call_python(self->python_get, cache, args, nargsf, kwnames);
    }

    PyObject *result = NULL, *entry = NULL;
    PyObject *storage_key = known_key(self, key);
    if (storage_key == NULL && PyErr_Occurred()) {
        return NULL;
    }
    if (storage_key == NULL) {
        /* A key not seen lately, or not a str: the Python get's own lookup, which
         * logs an invalid key. */
        storage_key = PyObject_CallMethodOneArg(cache, s_lookup_key, key);
        if (storage_key == NULL) {
            goto done;
        }
        if (storage_key == Py_None) {
            result = Py_NewRef(fallback);
            goto done;
        }
        if (!PyBytes_CheckExact(storage_key)) {
            result = call_python(self->python_get, cache, args, nargsf, kwnames);
            goto done;
        }
    }
    PyObject *read_args[2] = {storage_key, self->read_name};
    entry = PyObject_Vectorcall(self->read, read_args, 2, NULL);
    if (entry == NULL) {
        goto done;
    }
    if (entry == Py_None) {
        result = Py_NewRef(fallback);
        goto done;
    }
    int found = decode_fast(self->envelope, storage_key, entry, &result);
    if (found < 0) {
        goto done;
    }
    if (found) {
        if (result == missing) {
            Py_SETREF(result, Py_NewRef(fallback));
        }
        goto done;
    }
    /* What the Python get does after its read: decode, and say why an entry is not
     * used. */
    PyObject *value_args[4] = {cache, storage_key, entry, fallback};
    result = PyObject_VectorcallMethod(s_value, value_args,
                                       4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
done:
    Py_XDECREF(storage_key);
    Py_XDECREF(entry);
    return result;
}

/* ttl as seconds if it is what the C path takes (an int or float from 0 to
 * MAX_TIMEOUT): 1, or 0 (the Python code's case), -1 on an error. */
static int
fast_ttl(PyObject *ttl, double *seconds)
{
    if (PyLong_CheckExact(ttl)) {
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(ttl, &overflow);
        if (value == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (overflow || value < 0 || value > max_timeout) {
            return 0;
        }
        *seconds = (double)value;
        return 1;
    }
    if (PyFloat_CheckExact(ttl)) {
        double value = PyFloat_AS_DOUBLE(ttl);
        if (!(value >= 0.0 && value <= (double)max_timeout)) { /* NaN too */
            return 0;
        }
        *seconds = value;
        return 1;
    }
    return 0;
}

/* UWSGIBackend.set's fast path (no write refused a moment ago, and the entry fits):
 * 1 when uWSGI stored the entry, 0 when the Python code must write it (with *refused
 * set if uWSGI refused this attempt), -1 on an error. */
static int
uwsgi_update(FastPaths *self, PyObject *storage_key, PyObject *entry, double ttl,
             int *refused)
{
    PyObject *backend = self->backend;
    int result = 0;
    PyObject *full = NULL, *updates_full = NULL, *max_size = NULL, *no_expiry = NULL;
    PyObject *name = NULL, *expires = NULL, *stored = NULL;
    *refused = 0;
    if (!PyBytes_CheckExact(entry)) {
        return 0;
    }
    PyObject *backend_dict = instance_dict(backend);
    if (backend_dict != NULL) { /* a set() of this backend's own (a wrapper): through it */
        PyObject *own = PyDict_GetItemWithError(backend_dict, s_set);
        if (own != NULL) {
            goto done;
        }
        if (PyErr_Occurred()) {
            goto error;
        }
    }
    full = attr(backend_dict, backend, s_full_until);
    if (full == NULL) {
        goto error;
    }
    updates_full = attr(backend_dict, backend, s_updates_full_until);
    if (updates_full == NULL) {
        goto error;
    }
    max_size = attr(backend_dict, backend, s_max_value_size);
    if (max_size == NULL) {
        goto error;
    }
    if (!PyFloat_CheckExact(full) || PyFloat_AS_DOUBLE(full) != 0.0
        || !PyFloat_CheckExact(updates_full) || PyFloat_AS_DOUBLE(updates_full) != 0.0
        || !PyLong_CheckExact(max_size)) {
        goto done;
    }
    Py_ssize_t max_value_size = PyLong_AsSsize_t(max_size);
    if (max_value_size == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        goto done;
    }
    if (PyBytes_GET_SIZE(entry) > max_value_size) {
        goto done;
    }
    no_expiry = attr(backend_dict, backend, s_no_expiry);
    if (no_expiry == NULL) {
        goto error;
    }
    int forever = PyObject_IsTrue(no_expiry);
    if (forever < 0) {
        goto error;
    }
    name = attr(backend_dict, backend, s_cache_name);
    if (name == NULL) {
        goto error;
    }
    /* uWSGI's expiry has 1 s resolution: a second more so it never ends first; none
     * with purge_lru (UWSGIBackend.set, docs/uwsgi-cache2-facts.rst §5). */
    expires = PyLong_FromLongLong(forever || ttl == 0.0 ? 0 : (long long)ceil(ttl) + 1);
    if (expires == NULL) {
        goto error;
    }
    PyObject *update_args[4] = {storage_key, entry, expires, name};
    stored = PyObject_Vectorcall(self->cache_update, update_args, 4, NULL);
    if (stored == NULL) {
        goto error;
    }
    int done_ = PyObject_IsTrue(stored);
    if (done_ < 0) {
        goto error;
    }
    *refused = !done_;
    result = done_;
    goto done;

error:
    result = -1;
done:
    Py_XDECREF(backend_dict);
    Py_XDECREF(full);
    Py_XDECREF(updates_full);
    Py_XDECREF(max_size);
    Py_XDECREF(no_expiry);
    Py_XDECREF(name);
    Py_XDECREF(expires);
    Py_XDECREF(stored);
    return result;
}

static PyObject *
fastpaths_set(FastPaths *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *cache = self->cache;
    if (cache == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "this cache is gone");
        return NULL;
    }
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *key, *value, *timeout = Py_None;
    if (kwnames == NULL && (nargs == 2 || nargs == 3)) {
        key = args[0];
        value = args[1];
        if (nargs == 3) {
            timeout = args[2];
        }
    }
    else if (kwnames != NULL && nargs == 2 && PyTuple_GET_SIZE(kwnames) == 1
             && is_keyword(kwnames, 0, s_timeout)) {
        key = args[0];
        value = args[1];
        timeout = args[2];
    }
    else {
        return call_python(self->python_set, cache, args, nargsf, kwnames);
    }
    /* Only what needs no checking here: a known key, and no timeout or a plain one
     * (KeyValueCache.set's own test). */
    if (timeout != Py_None && !PyLong_CheckExact(timeout)) {
        return call_python(self->python_set, cache, args, nargsf, kwnames);
    }
    PyObject *result = NULL, *ttl = NULL, *clock = NULL, *now = NULL;
    PyObject *expires_object = NULL, *entry = NULL;
    PyObject *envelope = self->envelope, *envelope_dict = NULL;
    int python = 0;
    double seconds = 0.0;
    PyObject *storage_key = known_key(self, key);
    if (storage_key == NULL && PyErr_Occurred()) {
        return NULL;
    }
    if (storage_key == NULL) {
        /* A key not seen lately: storage_key() encodes and remembers it. One it
         * refuses is the Python set's to refuse (and log). */
        storage_key = PyObject_CallMethodOneArg(cache, s_storage_key, key);
        if (storage_key == NULL) {
            if (clear_exception()) {
                goto python_set;
            }
            goto done;
        }
        if (!PyBytes_CheckExact(storage_key)) {
            goto python_set;
        }
    }

    if (timeout == Py_None) {
        ttl = PyObject_GetAttr(cache, s_default_timeout); /* tests change it */
        if (ttl == NULL) {
            goto done;
        }
        int usable = fast_ttl(ttl, &seconds);
        if (usable < 0) {
            goto done;
        }
        python = !usable;
    }
    else {
        ttl = Py_NewRef(timeout);
        int usable = fast_ttl(ttl, &seconds);
        if (usable < 0) {
            goto done;
        }
        python = !usable || seconds == 0.0; /* 0 < timeout <= MAX_TIMEOUT */
    }
    if (python) {
        goto python_set;
    }
    envelope_dict = instance_dict(envelope);
    double expires_at = 0.0;
    if (seconds != 0.0) {
        clock = attr(envelope_dict, envelope, s_clock);
        if (clock == NULL) {
            goto done;
        }
        now = PyObject_CallNoArgs(clock);
        if (now == NULL) {
            goto done;
        }
        expires_object = PyNumber_Add(now, ttl); /* clock() + ttl, as in Python */
        if (expires_object == NULL) {
            goto done;
        }
        if (!PyFloat_CheckExact(expires_object)) {
            /* A clock that is not time.time's kind: the Python code (which calls it
             * again) packs it as it can. */
            goto python_set;
        }
        expires_at = PyFloat_AS_DOUBLE(expires_object);
    }
    else {
        expires_object = PyFloat_FromDouble(0.0);
        if (expires_object == NULL) {
            goto done;
        }
    }
    int made = encode_fast(envelope, storage_key, value, expires_at, &entry);
    if (made < 0) {
        goto done;
    }
    if (!made) {
        /* Other kinds: the envelope's encoder. A value it refuses goes to the Python
         * set, which encodes it again and says why it refused the write. */
        PyObject *encode_args[4] = {envelope, storage_key, value, expires_object};
        entry = PyObject_VectorcallMethod(s_encode, encode_args,
                                          4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (entry == NULL) {
            if (clear_exception()) {
                goto python_set;
            }
            goto done;
        }
    }

    int refused = 0;
    if (self->cache_update != Py_None) {
        int stored = uwsgi_update(self, storage_key, entry, seconds, &refused);
        if (stored < 0) {
            goto done;
        }
        if (stored) {
            result = Py_NewRef(Py_True);
            goto done;
        }
    }
    /* Any other store, a write refused a moment ago, an entry too large, or one uWSGI
     * has just refused: the Python code writes (from where this attempt left off),
     * makes room and logs. */
    if (refused) {
        PyObject *refused_args[5] = {cache, storage_key, entry, ttl, Py_True};
        result = PyObject_VectorcallMethod(s_store, refused_args,
                                           5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    else {
        PyObject *store_args[4] = {cache, storage_key, entry, ttl};
        result = PyObject_VectorcallMethod(s_store, store_args,
                                           4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    goto done;

python_set:
    result = call_python(self->python_set, cache, args, nargsf, kwnames);
done:
    Py_XDECREF(envelope_dict);
    Py_XDECREF(storage_key);
    Py_XDECREF(ttl);
    Py_XDECREF(clock);
    Py_XDECREF(now);
    Py_XDECREF(expires_object);
    Py_XDECREF(entry);
    return result;
}

static PyMethodDef fastpaths_methods[] = {
    {"get", (PyCFunction)(void (*)(void))fastpaths_get, METH_FASTCALL | METH_KEYWORDS,
     PyDoc_STR("get(key, default=None)\n--\n\nKeyValueCache.get, in C.")},
    {"set", (PyCFunction)(void (*)(void))fastpaths_set, METH_FASTCALL | METH_KEYWORDS,
     PyDoc_STR("set(key, value, timeout=None)\n--\n\nKeyValueCache.set, in C.")},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FastPathsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "flask_uwsgicache._speedups.FastPaths",
    .tp_basicsize = sizeof(FastPaths),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = PyDoc_STR("FastPaths(cache, python_get, python_set, known_keys, read, "
                        "read_name, envelope, backend, cache_update)\n--\n\n"
                        "One cache's get and set in C; python_get and python_set are "
                        "KeyValueCache's, called for every case not handled here."),
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)fastpaths_init,
    .tp_dealloc = (destructor)fastpaths_dealloc,
    .tp_traverse = (traverseproc)fastpaths_traverse,
    .tp_clear = (inquiry)fastpaths_clear,
    .tp_methods = fastpaths_methods,
};

static PyMethodDef module_methods[] = {
    {"decode", (PyCFunction)(void (*)(void))speedups_decode, METH_FASTCALL, decode_doc},
    {"encode", (PyCFunction)(void (*)(void))speedups_encode, METH_FASTCALL, encode_doc},
    {"configure", (PyCFunction)(void (*)(void))speedups_configure, METH_FASTCALL,
     configure_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "flask_uwsgicache._speedups",
    .m_doc = "The hot paths of flask_uwsgicache in C (optional; see cache.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

static int
intern(PyObject **name, const char *text)
{
    *name = PyUnicode_InternFromString(text);
    return *name == NULL ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (intern(&s_readers, "readers") || intern(&s_verified, "verified")
        || intern(&s_clock, "clock") || intern(&s_value, "_value")
        || intern(&s_default_timeout, "default_timeout")
        || intern(&s_pickle_protocol, "_pickle_protocol")
        || intern(&s_serializer, "serializer") || intern(&s_tag, "tag")
        || intern(&s_mac_base, "_mac_base") || intern(&s_encode, "encode")
        || intern(&s_decode, "decode")
        || intern(&s_full_until, "_full_until")
        || intern(&s_updates_full_until, "_updates_full_until")
        || intern(&s_max_value_size, "max_value_size")
        || intern(&s_no_expiry, "_no_expiry") || intern(&s_cache_name, "cache_name")
        || intern(&s_store, "_store") || intern(&s_lookup_key, "_lookup_key")
        || intern(&s_storage_key, "storage_key")
        || intern(&s_copy, "copy") || intern(&s_update, "update")
        || intern(&s_digest, "digest") || intern(&s_default, "default")
        || intern(&s_timeout, "timeout") || intern(&s_set, "set")) {
        return NULL;
    }
    if (PyType_Ready(&FastPathsType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "FastPaths", (PyObject *)&FastPathsType) < 0
        || PyModule_AddIntConstant(module, "TRAILER_SIZE", TRAILER_SIZE) < 0
        || PyModule_AddIntConstant(module, "SIGNED", SIGNED_FLAG) < 0
        || PyModule_AddIntConstant(module, "MAC_SIZE", MAC_SIZE) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

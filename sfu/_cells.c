/* _cells: Cells, a base type whose instances keep CELLS 64-bit integers in C memory, and Cell, the descriptor that
 * names one of them as an attribute of a subclass (sfu/cells.py declares them and holds the pure-Python twins).
 *
 * The receive path's per-packet statistics (RtpStreamStats, SequenceTracker, NackTracker, the Producer's and the
 * receiver's counters) are cells: sfu/_ingress.c reads and writes them in place (slot_offset finds a Cell on the
 * type and returns CELL_AT(index)), so no Python int is read, made or freed per packet; Python reads them as
 * attributes through Cell, a C descriptor, at the cost of a __slots__ member's. An optional cell holds None (a bit
 * of `none`); any other holds a signed 64-bit integer (setting a larger one raises OverflowError). */
#include "_fanout.h"

typedef struct {
    PyObject_HEAD
    int index;
    int optional;
    PyObject *name;  /* the attribute's name (__set_name__), for error messages; NULL before */
} Cell;

static PyObject *Cell_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"index", "optional", NULL};
    int index, optional = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i|p:Cell", kwlist, &index, &optional))
        return NULL;
    if (index < 0 || index >= CELLS) {
        PyErr_Format(PyExc_ValueError, "Cell: index %d out of 0..%d", index, CELLS - 1);
        return NULL;
    }
    Cell *c = (Cell *)type->tp_alloc(type, 0);
    if (c == NULL)
        return NULL;
    c->index = index;
    c->optional = optional;
    return (PyObject *)c;
}

static void Cell_dealloc(Cell *c) {
    Py_XDECREF(c->name);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

/* cells_of: `obj` as Cells, or NULL with a TypeError naming the cell. */
static Cells *cells_of(Cell *c, PyObject *obj) {
    if (PyObject_TypeCheck(obj, &CellsType))
        return (Cells *)obj;
    PyErr_Format(PyExc_TypeError, "cell %R (index %d) of a %s, which is not a Cells", c->name ? c->name : Py_None,
                 c->index, Py_TYPE(obj)->tp_name);
    return NULL;
}

static PyObject *Cell_get(Cell *c, PyObject *obj, PyObject *type) {
    (void)type;
    if (obj == NULL || obj == Py_None) {
        Py_INCREF(c);
        return (PyObject *)c;
    }
    Cells *s = cells_of(c, obj);
    if (s == NULL)
        return NULL;
    if (s->none >> c->index & 1u)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(s->cell[c->index]);
}

static int Cell_set(Cell *c, PyObject *obj, PyObject *value) {
    Cells *s = cells_of(c, obj);
    if (s == NULL)
        return -1;
    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "cell %R cannot be deleted", c->name ? c->name : Py_None);
        return -1;
    }
    if (value == Py_None) {
        if (!c->optional) {
            PyErr_Format(PyExc_TypeError, "cell %R cannot be None", c->name ? c->name : Py_None);
            return -1;
        }
        s->cell[c->index] = 0;
        s->none |= 1u << c->index;
        return 0;
    }
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "cell %R takes an int, not %s", c->name ? c->name : Py_None,
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    long long v = PyLong_AsLongLong(value);
    if (v == -1 && PyErr_Occurred())
        return -1;
    s->cell[c->index] = v;
    s->none &= ~(1u << c->index);
    return 0;
}

static PyObject *Cell_set_name(Cell *c, PyObject *args) {
    PyObject *owner, *name;
    if (!PyArg_ParseTuple(args, "OU:__set_name__", &owner, &name))
        return NULL;
    Py_INCREF(name);
    Py_XSETREF(c->name, name);
    Py_RETURN_NONE;
}

static PyObject *Cell_repr(Cell *c) {
    return PyUnicode_FromFormat("Cell(%d%s)", c->index, c->optional ? ", optional=True" : "");
}

static PyMethodDef Cell_methods[] = {
    {"__set_name__", (PyCFunction)Cell_set_name, METH_VARARGS, "__set_name__: the attribute's name, for errors"},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "Cell[int]: for annotations"},
    {NULL},
};

static PyMemberDef Cell_members[] = {
    {"index", T_INT, offsetof(Cell, index), READONLY, "index: which of the instance's cells"},
    {"optional", T_BOOL, offsetof(Cell, optional), READONLY, "optional: the cell may hold None"},
    {NULL},
};

PyTypeObject CellType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sfu._fanout.Cell",
    .tp_doc = "Cell(index, optional=False): an int attribute kept in a Cells instance's C memory",
    .tp_basicsize = sizeof(Cell),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Cell_new,
    .tp_dealloc = (destructor)Cell_dealloc,
    .tp_repr = (reprfunc)Cell_repr,
    .tp_descr_get = (descrgetfunc)Cell_get,
    .tp_descr_set = (descrsetfunc)Cell_set,
    .tp_methods = Cell_methods,
    .tp_members = Cell_members,
};

PyTypeObject CellsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sfu._fanout.Cells",
    .tp_doc = "Cells: a base class whose instances keep their Cell attributes in C memory",
    .tp_basicsize = sizeof(Cells),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
};

int cell_index(PyObject *descr) {
    return Py_TYPE(descr) == &CellType ? ((Cell *)descr)->index : -1;
}

int cells_add_types(PyObject *m) {
    if (module_add_type(m, &CellType, "Cell") < 0 || module_add_type(m, &CellsType, "Cells") < 0)
        return -1;
    return contract_constant("CELLS", PyLong_FromLong(CELLS));
}

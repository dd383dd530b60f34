/* placeholder: being written */
typedef int percept_placeholder_unit;

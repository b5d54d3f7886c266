from gradmagic.records import Records, caller_line


def test_caller_line_finds_the_first_frame_of_the_file_within_its_tries():
    source = "def inner(depth, tries):\n    return caller_line('<cell>', depth, tries)\n\nline = inner(1, 1)\n"
    namespace = {"caller_line": caller_line}
    exec(compile(source, "<cell>", "exec"), namespace)
    assert namespace["line"] == 2  # frame 1 is inner() itself, in <cell>
    wrapped = "def outer():\n    return helper()\n\nline = outer()\n"
    namespace = {"helper": lambda: caller_line("<cell>", 1, 3)}
    exec(compile(wrapped, "<cell>", "exec"), namespace)
    assert namespace["line"] == 2  # the lambda's frame is not <cell>; its caller is
    namespace = {"helper": lambda: caller_line("<other>", 1, 3)}
    exec(compile(wrapped, "<cell>", "exec"), namespace)
    assert namespace["line"] is None


def test_records_start_empty_and_column_aligned():
    r = Records()
    columns = ("objs", "versions", "shapes", "dtypes", "devices", "requires_grad", "grad_fns", "output_nrs",
               "producers", "depths")
    assert all(getattr(r, c) == [] for c in columns)
    assert r.snapshots == {} and r.passes == [] and r.notes == []

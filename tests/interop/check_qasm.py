#!/usr/bin/env python3
"""Check the OpenQASM export of the 4-qubit circuit with Qiskit.

Reads DIR/expected.json, written by the Rust exporter:
    {"circuit": "circuit.qasm",
     "cases": [{"image": ..., "angles": [x0..x3], "expvals": [<Z_0>..<Z_3>], "qasm2": "<name>.qasm2"}]}
and checks, failing (exit 1) on the first problem:
  1. circuit.qasm loads with Qiskit's OpenQASM 3 importer, its only parameters are x0..x3, and its
     gates are exactly: rx(x_k) q[k] for k = 0..3, then per layer l: rz, ry, rz on each wire
     0..3, then cx(i, (i + r_l) % 4) for i = 0..3 with r_l = (l % 3) + 1; then q[k] measured into
     c[k] for k = 0..3 (and nothing else);
  2. every case: x0..x3 bound by name, Statevector <Z_k> equal to the expected expvals to 1e-9;
  3. every case's .qasm2 file loads with qiskit.qasm2, has the same structure, rx angles equal to
     the case's angles and the same layer angles as circuit.qasm (to 1e-12), and the same <Z_k>
     to 1e-9;
  4. every case, sampled with --shots shots on StatevectorSampler (seeded by --seed): the <Z_k>
     estimated from the counts is within 5 sigma of the expected value, for both circuits.
Bit order: Qiskit qubit k is our wire k, but Qiskit's Pauli labels and count bitstrings put
qubit 0 rightmost, so <Z_k> uses the label "I"*(3-k) + "Z" + "I"*k and bit k of a count key is
key[3 - k].

Run (see requirements.txt beside this file):
    pip install -r tests/interop/requirements.txt
    python3 tests/interop/check_qasm.py DIR [--shots 10000] [--seed 0]
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import qiskit
import qiskit.qasm2
import qiskit.qasm3
from qiskit.primitives import StatevectorSampler
from qiskit.quantum_info import Pauli, Statevector

N = 4
INPUTS = [f"x{k}" for k in range(N)]
STATEVECTOR_TOL = 1e-9
ANGLE_TOL = 1e-12
Z_LIMIT = 5.0


class CheckError(Exception):
    """A failed check; the message says what and where."""


def expected_structure(layers):
    """The gate sequence the exporter must write: (name, qubits) per instruction."""
    seq = [("rx", (k,)) for k in range(N)]
    for l in range(layers):
        r = (l % (N - 1)) + 1
        for i in range(N):
            seq += [("rz", (i,)), ("ry", (i,)), ("rz", (i,))]
        seq += [("cx", (i, (i + r) % N)) for i in range(N)]
    return seq


def check_structure(qc, where):
    """Check the gate sequence and the measurements.

    Returns (layers, the 4 rx instructions, the layer rotation angles as floats in file order)."""
    if qc.num_qubits != N or qc.num_clbits != N:
        raise CheckError(f"{where}: {qc.num_qubits} qubits and {qc.num_clbits} bits, expected {N} and {N}")
    ops = [(ins.operation.name, tuple(qc.find_bit(q).index for q in ins.qubits),
            tuple(qc.find_bit(c).index for c in ins.clbits), ins.operation.params) for ins in qc.data]
    gates = [o for o in ops if o[0] != "measure"]
    measures = [o for o in ops if o[0] == "measure"]
    if ops[len(gates):] != measures:
        raise CheckError(f"{where}: measurements must come after all the gates")
    if sorted((m[1], m[2]) for m in measures) != [((k,), (k,)) for k in range(N)]:
        raise CheckError(f"{where}: expected exactly one measurement q[k] -> c[k] for k = 0..3, "
                         f"got {[(m[1], m[2]) for m in measures]}")
    n_cx = sum(1 for g in gates if g[0] == "cx")
    layers = n_cx // N
    counts = dict(qc.count_ops())
    want_counts = {"rx": N, "rz": 2 * N * layers, "ry": N * layers, "cx": N * layers, "measure": N}
    if layers < 1 or {k: v for k, v in counts.items() if v} != want_counts:
        raise CheckError(f"{where}: gate counts {dict(counts)}; for {layers} layer(s) expected {want_counts} "
                         f"(4 rx + 12 rotations and 4 cx per layer + 4 measurements)")
    want = expected_structure(layers)
    for idx, (g, w) in enumerate(zip(gates, want)):
        if (g[0], g[1]) != w:
            raise CheckError(f"{where}: instruction {idx} is {g[0]} on qubits {g[1]}, expected {w[0]} on {w[1]}")
    try:
        layer_angles = [float(g[3][0]) for g in gates[N:] if g[0] != "cx"]
    except TypeError as e:
        raise CheckError(f"{where}: a layer rotation angle is not a number ({e})") from e
    return layers, gates[:N], layer_angles


def z_expvals(qc):
    """<Z_k> for k = 0..3 of the circuit without its final measurements (qubit k = wire k)."""
    sv = Statevector(qc.remove_final_measurements(inplace=False))
    return np.array([sv.expectation_value(Pauli("I" * (N - 1 - k) + "Z" + "I" * k)).real
                     for k in range(N)])


def sampled_z(sampler, qc, shots):
    """<Z_k> estimated from counts; count keys are 'c3 c2 c1 c0' (bit k = key[3 - k])."""
    counts = sampler.run([qc], shots=shots).result()[0].join_data().get_counts()
    est = np.zeros(N)
    for key, n in counts.items():
        for k in range(N):
            est[k] += n * (1 - 2 * int(key[N - 1 - k]))
    return est / shots


def z_score(est, exact, shots):
    sigma = np.sqrt(np.maximum(1 - exact ** 2, 1 / shots) / shots)
    return np.abs(est - exact) / sigma


def load_file(path, loader, what):
    if not path.is_file():
        raise CheckError(f"missing {what} file {path}")
    try:
        return loader(str(path))
    except Exception as e:  # noqa: BLE001 - any importer error is a failed check
        detail = str(e).strip() or "no detail given (a syntax error; any line number the parser reported is printed above)"
        raise CheckError(f"{path}: the {what} importer rejected it: {type(e).__name__}: {detail}") from e


def check(folder, shots, seed):
    exp_path = folder / "expected.json"
    if not exp_path.is_file():
        raise CheckError(f"missing {exp_path}")
    expected = json.loads(exp_path.read_text())
    cases = expected.get("cases") or []
    if not cases:
        raise CheckError(f"{exp_path}: no cases")

    qc3 = load_file(folder / expected.get("circuit", "circuit.qasm"), qiskit.qasm3.load, "OpenQASM 3")
    params = {p.name: p for p in qc3.parameters}
    if sorted(params) != INPUTS:
        raise CheckError(f"circuit.qasm: parameters {sorted(params)}, expected inputs {INPUTS}")
    layers, embed3, angles3 = check_structure(qc3, "circuit.qasm")
    for k, g in enumerate(embed3):
        if g[3][0] != params[INPUTS[k]]:
            raise CheckError(f"circuit.qasm: rx on q[{k}] has angle {g[3][0]}, expected input {INPUTS[k]}")

    sampler = StatevectorSampler(seed=np.random.default_rng(seed))
    rows, worst3, worst2, worst_z = [], 0.0, 0.0, 0.0
    for n, case in enumerate(cases):
        name = f"case {n} ({case.get('image', '?')})"
        angles = np.asarray(case["angles"], dtype=float)
        exact = np.asarray(case["expvals"], dtype=float)
        if angles.shape != (N,) or exact.shape != (N,):
            raise CheckError(f"{name}: angles and expvals must have {N} values each")

        bound3 = qc3.assign_parameters({params[INPUTS[k]]: angles[k] for k in range(N)})
        err3 = float(np.abs(z_expvals(bound3) - exact).max())
        if not err3 <= STATEVECTOR_TOL:
            raise CheckError(f"{name}: circuit.qasm statevector <Z> differs from expected by {err3:.3e} "
                             f"(limit {STATEVECTOR_TOL:g}); expected {exact.tolist()}")

        qasm2 = folder / case["qasm2"]
        qc2 = load_file(qasm2, qiskit.qasm2.load, "OpenQASM 2")
        layers2, embed2, angles2 = check_structure(qc2, qasm2.name)
        if layers2 != layers:
            raise CheckError(f"{qasm2.name}: {layers2} layers, circuit.qasm has {layers}")
        d_embed = float(np.abs(np.array([float(g[3][0]) for g in embed2]) - angles).max())
        d_layer = float(np.abs(np.array(angles2) - np.array(angles3)).max())
        if d_embed > ANGLE_TOL or d_layer > ANGLE_TOL:
            raise CheckError(f"{qasm2.name}: angles differ from the case's angles by {d_embed:.3e} and "
                             f"from circuit.qasm's layer angles by {d_layer:.3e} (limit {ANGLE_TOL:g})")
        err2 = float(np.abs(z_expvals(qc2) - exact).max())
        if not err2 <= STATEVECTOR_TOL:
            raise CheckError(f"{name}: {qasm2.name} statevector <Z> differs from expected by {err2:.3e} "
                             f"(limit {STATEVECTOR_TOL:g}); expected {exact.tolist()}")

        z = max(float(z_score(sampled_z(sampler, c, shots), exact, shots).max()) for c in (bound3, qc2))
        if not z <= Z_LIMIT:
            raise CheckError(f"{name}: sampled <Z> is {z:.2f} sigma from expected (limit {Z_LIMIT})")
        worst3, worst2, worst_z = max(worst3, err3), max(worst2, err2), max(worst_z, z)
        rows.append((n, case.get("image", "?"), err3, err2, z))

    print(f"qiskit {qiskit.__version__}; {folder}: {len(cases)} cases, {layers} layer(s), "
          f"{shots} shots, seed {seed}")
    print(f"{'case':>4}  {'qasm3 |dZ|':>10}  {'qasm2 |dZ|':>10}  {'max z':>6}  image")
    for n, image, e3, e2, z in rows:
        print(f"{n:>4}  {e3:>10.2e}  {e2:>10.2e}  {z:>6.2f}  {image}")
    print(f"OK: {len(cases)} cases; max statevector error qasm3 {worst3:.2e}, qasm2 {worst2:.2e} "
          f"(limit {STATEVECTOR_TOL:g}); max sampling z-score {worst_z:.2f} (limit {Z_LIMIT:g})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path, help="folder with circuit.qasm, *.qasm2 and expected.json")
    ap.add_argument("--shots", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.shots < 1:
        ap.error("--shots must be positive")
    try:
        check(args.dir, args.shots, args.seed)
    except CheckError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

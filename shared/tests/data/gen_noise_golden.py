#!/usr/bin/env python3
"""Golden vectors for the noisy 4-qubit circuit (depolarizing gate noise + readout bit flips).

How to run:
    pip install pennylane==0.45.1; python gen_noise_golden.py OUT.json SEED
(the committed noise-golden.json was made with SEED = 20261201).

Noise model, gate by gate (Rot is decomposed, no Rot gate is used):
    start |0000>
    for i in 0..3:  RX(features[i]) on wire i, DepolarizingChannel(p) on wire i
    for each layer l (r_l = (l % 3) + 1, PennyLane's default ranges):
        for i in 0..3: RZ(w[l][i][0]), Depol(p) on i; RY(w[l][i][1]), Depol(p) on i;
                       RZ(w[l][i][2]), Depol(p) on i
        for i in 0..3: CNOT(i, (i + r_l) % 4), Depol(p) on the control, Depol(p) on the target
    BitFlip(q) on every wire (readout error)
    return probs(wires=[0,1,2,3]) (wire 0 = most significant bit), expval(PauliZ(i)) for i in 0..3

Reference values: PennyLane default.mixed (complex128 density matrix), with the two channels
applied as qml.QubitChannel(exact Kraus matrices): PennyLane's own DepolarizingChannel and BitFlip
add 1e-14 inside every sqrt, which makes the trace drift by ~4e-12 over a 4-layer circuit (see
below). Every case is cross-checked, and the script fails on any mismatch, against
  (a) an independent numpy density-matrix simulator with the Kraus operators written out
      (depolarizing: sqrt(1-p) I, sqrt(p/3) X, Y, Z; bit flip: sqrt(1-q) I, sqrt(q) X), to 1e-12;
  (b) for p = q = 0, default.qubit's noiseless AngleEmbedding + StronglyEntanglingLayers, to 1e-12;
  (c) for p = 0.75 (fully depolarizing), expvals all 0 and probs all 1/16, to 1e-12;
  (d) default.mixed with the stock qml.DepolarizingChannel / qml.BitFlip, to 2e-11 (their eps drift);
  (e) Kraus matrices: PennyLane's compute_kraus_matrices(p) against the exact ones, to 1e-6.
(default.mixed's own readout_prob option is not used: in 0.45.1 it raises a TypeError for
analytic expval/probs, so the readout error is the explicit BitFlip(q) gates above.)
"""
import json
import sys
import time

import numpy as np
import pennylane as qml

N = 4
WIRES = list(range(N))
TOL = 1e-12
LAYER_CHOICES = (1, 2, 4)
P_CHOICES = (0.0, 1e-3, 0.01, 0.05, 0.2, 0.75)
Q_CHOICES = (0.0, 0.01, 0.1, 0.5)
NOISE_MODEL = (
    "start |0000>; RX(features[i]) then DepolarizingChannel(p) on wire i, i=0..3; per layer l: "
    "for i=0..3 RZ(w[l][i][0]),Depol(p),RY(w[l][i][1]),Depol(p),RZ(w[l][i][2]),Depol(p) on wire i; "
    "then for i=0..3 CNOT(i,(i+r_l)%4), Depol(p) on control, Depol(p) on target, r_l=(l%3)+1; "
    "finally BitFlip(q) on every wire; probs over wires [0,1,2,3] (wire 0 = MSB) and <Z_i>; "
    "Depol Kraus sqrt(1-p)I, sqrt(p/3)X,Y,Z; BitFlip Kraus sqrt(1-q)I, sqrt(q)X; PennyLane default.mixed "
    "0.45.1, channels as QubitChannel with these exact Kraus matrices (stock DepolarizingChannel/BitFlip "
    "add 1e-14 inside each sqrt: up to ~4e-12 trace drift)"
)


def ranges_for(layers):
    return [(l % (N - 1)) + 1 for l in range(layers)]


# ---------------- PennyLane ----------------
# PennyLane 0.45.1's DepolarizingChannel and BitFlip build their Kraus matrices as
# sqrt(1 - p + eps) I, sqrt(p/3 + eps) X, ... with eps = qml.math.eps = 1e-14 (ops/channel.py),
# so every channel adds (number of Kraus matrices) * 1e-14 to the trace: ~4e-12 after the ~90
# channels of a 4-layer case. The golden values therefore come from default.mixed applying the
# exact Kraus matrices of those two channels through qml.QubitChannel; the stock channels are run
# too, and must agree to STOCK_TOL (the drift above), which confirms that it is the same model.
STOCK_TOL = 2e-11


def pl_depol_kraus(p):
    paulis = [qml.matrix(op(0)) for op in (qml.Identity, qml.PauliX, qml.PauliY, qml.PauliZ)]
    return [np.sqrt(c) * m for c, m in zip((1 - p, p / 3, p / 3, p / 3), paulis)]


def pl_bitflip_kraus(q):
    return [np.sqrt(1 - q) * qml.matrix(qml.Identity(0)), np.sqrt(q) * qml.matrix(qml.PauliX(0))]


def noisy_ops(features, weights, p, q, stock):
    if stock:
        depol = lambda w: qml.DepolarizingChannel(p, wires=w)
        flip = lambda w: qml.BitFlip(q, wires=w)
    else:
        kd, kb = pl_depol_kraus(p), pl_bitflip_kraus(q)
        depol = lambda w: qml.QubitChannel(kd, wires=w)
        flip = lambda w: qml.QubitChannel(kb, wires=w)
    for i in WIRES:
        qml.RX(features[i], wires=i)
        depol(i)
    for l, r in enumerate(ranges_for(len(weights))):
        for i in WIRES:
            phi, theta, omega = weights[l][i]
            qml.RZ(phi, wires=i)
            depol(i)
            qml.RY(theta, wires=i)
            depol(i)
            qml.RZ(omega, wires=i)
            depol(i)
        for i in WIRES:
            t = (i + r) % N
            qml.CNOT(wires=[i, t])
            depol(i)
            depol(t)
    for i in WIRES:
        flip(i)


def pl_noisy(features, weights, p, q, stock=False):
    dev = qml.device("default.mixed", wires=N)

    @qml.qnode(dev)
    def circuit():
        noisy_ops(features, weights, p, q, stock)
        return qml.probs(wires=WIRES), [qml.expval(qml.PauliZ(i)) for i in WIRES]

    probs, ev = circuit()
    return np.asarray(probs, dtype=float), np.asarray(ev, dtype=float)


def pl_noiseless(features, weights):
    dev = qml.device("default.qubit", wires=N)

    @qml.qnode(dev)
    def circuit():
        qml.AngleEmbedding(features, wires=WIRES, rotation="X")
        qml.StronglyEntanglingLayers(np.asarray(weights), wires=WIRES,
                                     ranges=ranges_for(len(weights)))
        return qml.probs(wires=WIRES), [qml.expval(qml.PauliZ(i)) for i in WIRES]

    probs, ev = circuit()
    return np.asarray(probs, dtype=float), np.asarray(ev, dtype=float)


# ---------------- independent numpy density-matrix simulator ----------------
I2 = np.eye(2, dtype=complex)
X = np.array([[0, 1], [1, 0]], dtype=complex)
Y = np.array([[0, -1j], [1j, 0]], dtype=complex)
Z = np.array([[1, 0], [0, -1]], dtype=complex)


def m_rx(t):
    c, s = np.cos(t / 2), np.sin(t / 2)
    return np.array([[c, -1j * s], [-1j * s, c]], dtype=complex)


def m_ry(t):
    c, s = np.cos(t / 2), np.sin(t / 2)
    return np.array([[c, -s], [s, c]], dtype=complex)


def m_rz(t):
    return np.array([[np.exp(-0.5j * t), 0], [0, np.exp(0.5j * t)]], dtype=complex)


def embed_1q(u, wire):
    """16x16 operator acting as u on `wire` (wire 0 = most significant bit)."""
    out = np.array([[1.0 + 0j]])
    for w in WIRES:
        out = np.kron(out, u if w == wire else I2)
    return out


def cnot_16(ctrl, tgt):
    m = np.zeros((16, 16), dtype=complex)
    for idx in range(16):
        bit_c = (idx >> (N - 1 - ctrl)) & 1
        out = idx ^ (1 << (N - 1 - tgt)) if bit_c else idx
        m[out, idx] = 1.0
    return m


def apply_unitary(rho, u):
    return u @ rho @ u.conj().T


def apply_kraus(rho, kraus_1q, wire):
    acc = np.zeros_like(rho)
    for k in kraus_1q:
        kk = embed_1q(k, wire)
        acc += kk @ rho @ kk.conj().T
    return acc


def depol_kraus(p):
    return [np.sqrt(1 - p) * I2, np.sqrt(p / 3) * X, np.sqrt(p / 3) * Y, np.sqrt(p / 3) * Z]


def bitflip_kraus(q):
    return [np.sqrt(1 - q) * I2, np.sqrt(q) * X]


def np_noisy(features, weights, p, q):
    rho = np.zeros((16, 16), dtype=complex)
    rho[0, 0] = 1.0
    dk = depol_kraus(p)
    for i in WIRES:
        rho = apply_kraus(apply_unitary(rho, embed_1q(m_rx(features[i]), i)), dk, i)
    for l, r in enumerate(ranges_for(len(weights))):
        for i in WIRES:
            phi, theta, omega = weights[l][i]
            for g in (m_rz(phi), m_ry(theta), m_rz(omega)):
                rho = apply_kraus(apply_unitary(rho, embed_1q(g, i)), dk, i)
        for i in WIRES:
            t = (i + r) % N
            rho = apply_unitary(rho, cnot_16(i, t))
            rho = apply_kraus(rho, dk, i)
            rho = apply_kraus(rho, dk, t)
    bk = bitflip_kraus(q)
    for i in WIRES:
        rho = apply_kraus(rho, bk, i)
    assert abs(np.trace(rho) - 1) < TOL, "trace not preserved"
    assert np.abs(rho - rho.conj().T).max() < TOL, "not Hermitian"
    probs = np.real(np.diag(rho))
    ev = np.array([sum(probs[k] * (1 - 2 * ((k >> (N - 1 - i)) & 1)) for k in range(16))
                   for i in WIRES])
    return probs, ev


# ---------------- case plan ----------------
def plan():
    """(layers, p, q) per case: the full 6x4 (p, q) grid, then 2 more noiseless cases, then 14 random."""
    out = []
    k = 0
    for p in P_CHOICES:
        for q in Q_CHOICES:
            out.append((LAYER_CHOICES[k % 3], p, q))
            k += 1
    out.append((2, 0.0, 0.0))
    out.append((4, 0.0, 0.0))
    return out


def make_cases(seed):
    rng = np.random.default_rng(seed)
    the_plan = plan()
    for k in range(14):  # random extras, noise levels drawn from the same sets
        the_plan.append((LAYER_CHOICES[k % 3], float(rng.choice(P_CHOICES)),
                         float(rng.choice(Q_CHOICES))))
    worst = {"vs_numpy": 0.0, "stock_channels": 0.0, "noiseless_vs_default_qubit": 0.0,
             "full_depol_vs_uniform": 0.0}
    cases = []
    for k, (layers, p, q) in enumerate(the_plan):
        x = rng.uniform(-np.pi, np.pi, size=N)
        w = rng.uniform(0.0, 2 * np.pi, size=(layers, N, 3))
        probs, ev = pl_noisy(x, w, p, q)
        probs_np, ev_np = np_noisy(x, w, p, q)

        def check(name, err):
            worst[name] = max(worst[name], err)
            assert err <= TOL, f"case {k} (L={layers}, p={p}, q={q}): {name} differs by {err:.3e}"

        check("vs_numpy", float(max(np.abs(probs - probs_np).max(), np.abs(ev - ev_np).max())))
        probs_st, ev_st = pl_noisy(x, w, p, q, stock=True)
        err = float(max(np.abs(probs - probs_st).max(), np.abs(ev - ev_st).max()))
        worst["stock_channels"] = max(worst["stock_channels"], err)
        assert err <= STOCK_TOL, f"case {k}: stock PennyLane channels differ by {err:.3e}"
        for ours, theirs in ((pl_depol_kraus(p), qml.DepolarizingChannel.compute_kraus_matrices(p)),
                             (pl_bitflip_kraus(q), qml.BitFlip.compute_kraus_matrices(q))):
            kerr = max(float(np.abs(a - np.asarray(b)).max()) for a, b in zip(ours, theirs))
            assert len(ours) == len(theirs) and kerr <= 1e-6, f"case {k}: Kraus differ by {kerr:.3e}"
        if p == 0.0 and q == 0.0:
            probs_dq, ev_dq = pl_noiseless(x, w)
            check("noiseless_vs_default_qubit",
                  float(max(np.abs(probs - probs_dq).max(), np.abs(ev - ev_dq).max())))
        if p == 0.75:
            check("full_depol_vs_uniform",
                  float(max(np.abs(probs - 1 / 16).max(), np.abs(ev).max())))
        assert abs(probs.sum() - 1) <= TOL
        cases.append({
            "id": f"noise-{k:03d}",
            "layers": layers,
            "ranges": ranges_for(layers),
            "features": x.tolist(),
            "weights": w.tolist(),
            "depolarizing": p,
            "readout_flip": q,
            "probs": probs.tolist(),
            "expvals": ev.tolist(),
        })
    assert any(c["depolarizing"] == 0 and c["readout_flip"] == 0 for c in cases)
    assert any(c["depolarizing"] == 0.75 for c in cases)
    assert any(c["readout_flip"] == 0.5 for c in cases)
    return cases, worst


def write(path, seed):
    t0 = time.time()
    cases, worst = make_cases(seed)
    head = {"generator": "gen_noise_golden.py", "pennylane": qml.__version__, "seed": seed,
            "noise_model": NOISE_MODEL}
    # One case per line keeps the file small and diffable; it is still plain JSON.
    body = ",\n".join(json.dumps(c) for c in cases)
    with open(path, "w") as f:
        f.write(json.dumps(head)[:-1] + ',\n "cases": [\n' + body + "\n]}\n")
    with open(path) as f:
        assert json.load(f)["cases"] == cases
    print(f"{path}: {len(cases)} cases in {time.time() - t0:.1f}s; max deviations: {worst}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python gen_noise_golden.py OUT.json SEED")
    if qml.__version__ != "0.45.1":
        sys.exit(f"need pennylane 0.45.1, found {qml.__version__}")
    write(sys.argv[1], int(sys.argv[2]))

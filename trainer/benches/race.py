"""One training step of the same hybrid model in PennyLane + torch, in plain torch and in this
trainer, timed side by side on this machine.

    python3 -m venv /tmp/race
    /tmp/race/bin/pip install -r trainer/benches/requirements.txt
    /tmp/race/bin/python trainer/benches/race.py          # from the workspace root

Both architectures the trainer knows: the default hybrid (8,234 parameters) and the paper's
(37,650). Each step is what `trainer` does per batch: forward on 32 images, cross-entropy,
backward, one Adam step, on synthetic images (the time does not depend on pixel values). The
circuit (AngleEmbedding with X rotations, 4 StronglyEntanglingLayers, <Z> per qubit) runs as:

- PennyLane `default.qubit`, `diff_method="backprop"`, torch interface, the whole batch at once
  (parameter broadcasting through `qml.qnn.TorchLayer`);
- PennyLane `lightning.qubit`, `diff_method="adjoint"` (one circuit per image);
- plain torch: a batched 16-amplitude state-vector simulator in complex64 torch ops, the
  fastest a torch user writes without PennyLane.

Before timing, the three give the same <Z> for the same weights and inputs (within 1e-5), so
the race is between implementations of one model. Then the trainer's own bench runs in the
same invocation (`cargo bench -p trainer --bench epoch`, its "trainer step" column: the
trainer's data-parallel step). Everything uses the same thread count (`--threads`, default all
cores); torch runs with OMP_WAIT_POLICY=PASSIVE, without which it is several times slower on a
2-core machine.
"""

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pennylane as qml
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
BATCH = 32
CLASSES = 6
LAYERS = 4
WIRES = 4
# Conv blocks as the trainer defines them (trainer/src/model.rs): out channels, kernel, stride,
# padding, max-pool after the ReLU. The names begin the trainer bench's rows.
ARCHITECTURES = {
    "hybrid (default)": ([(8, 6, 4, 1, 1), (16, 3, 2, 1, 1), (32, 3, 1, 1, 2)], 8_234),
    "hybrid-paper": ([(16, 3, 1, 1, 2), (32, 3, 1, 1, 2)], 37_650),
}


class TorchCircuit(nn.Module):
    """The circuit as a batched state vector in plain torch (wire 0 = most significant bit)."""

    def __init__(self):
        super().__init__()
        self.weights = nn.Parameter(torch.rand(LAYERS, WIRES, 3) * 2 * torch.pi)
        index = torch.arange(16)
        bits = [(index >> (WIRES - 1 - w)) & 1 for w in range(WIRES)]
        self.register_buffer("z_signs", torch.stack([1.0 - 2.0 * b.float() for b in bits], 1))
        # Each layer's CNOT ring (range (l mod 3) + 1) as one gather of the amplitudes: the new
        # amplitude k is the old one at CNOT_0(CNOT_1(...(k))), so the index passes the gates in
        # reverse order.
        self.perms = []
        for layer in range(LAYERS):
            perm = index.clone()
            for control in reversed(range(WIRES)):
                target = (control + layer % (WIRES - 1) + 1) % WIRES
                flip = ((perm >> (WIRES - 1 - control)) & 1) << (WIRES - 1 - target)
                perm = perm ^ flip
            self.perms.append(perm)

    @staticmethod
    def apply(state, gate, wire):
        """`gate` [2,2] (or [b,2,2]) on `wire` of `state` [b,16]."""
        view = state.reshape(state.shape[0], 2**wire, 2, 2 ** (WIRES - 1 - wire))
        rule = "bij,bajc->baic" if gate.dim() == 3 else "ij,bajc->baic"
        return torch.einsum(rule, gate, view).reshape(state.shape[0], 16)

    @staticmethod
    def rot(phi, theta, omega):
        """PennyLane's Rot = RZ(omega) RY(theta) RZ(phi)."""
        c, s = torch.cos(theta / 2), torch.sin(theta / 2)
        plus, minus = (phi + omega) / 2, (phi - omega) / 2
        return torch.stack(
            [
                torch.stack([torch.polar(c, -plus), -torch.polar(s, minus)]),
                torch.stack([torch.polar(s, -minus), torch.polar(c, plus)]),
            ]
        )

    def forward(self, angles):
        batch = angles.shape[0]
        state = torch.zeros(batch, 16, dtype=torch.complex64)
        state[:, 0] = 1
        for wire in range(WIRES):
            c, s = torch.cos(angles[:, wire] / 2), torch.sin(angles[:, wire] / 2)
            zero = torch.zeros_like(c)
            rx = torch.complex(torch.stack([c, zero, zero, c], 1), torch.stack([zero, -s, -s, zero], 1))
            state = self.apply(state, rx.reshape(batch, 2, 2), wire)
        for layer in range(LAYERS):
            for wire in range(WIRES):
                state = self.apply(state, self.rot(*self.weights[layer, wire]), wire)
            state = state[:, self.perms[layer]]
        return (state.abs() ** 2) @ self.z_signs


def pennylane_circuit(device_name, diff_method):
    device = qml.device(device_name, wires=WIRES)

    @qml.qnode(device, interface="torch", diff_method=diff_method)
    def circuit(inputs, weights):
        qml.AngleEmbedding(inputs, wires=range(WIRES), rotation="X")
        qml.StronglyEntanglingLayers(weights, wires=range(WIRES))
        return [qml.expval(qml.PauliZ(w)) for w in range(WIRES)]

    return qml.qnn.TorchLayer(circuit, {"weights": (LAYERS, WIRES, 3)})


class Hybrid(nn.Module):
    def __init__(self, blocks, circuit):
        super().__init__()
        layers, channels, side = [], 1, 64
        for out, kernel, stride, padding, pool in blocks:
            layers += [nn.Conv2d(channels, out, kernel, stride, padding), nn.ReLU()]
            if pool > 1:
                layers.append(nn.MaxPool2d(pool))
            channels, side = out, ((side + 2 * padding - kernel) // stride + 1) // pool
        self.encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * side * side, WIRES))
        self.circuit = circuit
        self.head = nn.Linear(WIRES, CLASSES)

    def forward(self, images):
        return self.head(self.circuit(self.encoder(images)).float())


def check_circuits(circuits):
    """Every implementation gives the plain-torch simulator's <Z> for the same weights."""
    reference = circuits["plain torch"]
    angles = torch.rand(8, WIRES) * 6 - 3
    with torch.no_grad():
        want = reference(angles)
        for name, circuit in circuits.items():
            circuit.weights.copy_(reference.weights)
            got = circuit(angles).float()
            worst = (got - want).abs().max().item()
            assert worst < 1e-5, f"{name}: <Z> differs from plain torch by {worst}"
            print(f"  {name}: <Z> within {worst:.1e} of plain torch")


def time_steps(model, min_seconds, min_steps):
    """Mean seconds per training step after two warm-up steps."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    images = torch.rand(BATCH, 1, 64, 64)
    labels = torch.arange(BATCH) % CLASSES

    def step():
        optimizer.zero_grad()
        loss_fn(model(images), labels).backward()
        optimizer.step()

    step(), step()
    steps, start = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - start < min_seconds:
        step()
        steps += 1
    return (time.perf_counter() - start) / steps


def trainer_steps(threads, bench_binary):
    """The trainer bench's "trainer step" (seconds) per row name, and its whole output."""
    env = dict(os.environ, BENCH_THREADS=str(threads), BENCH_FILTER="hybrid")
    command = [bench_binary] if bench_binary else ["cargo", "bench", "-q", "-p", "trainer", "--bench", "epoch"]
    output = subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    row = re.compile(r"^(?P<name>.+?)\s+\d+(\s+[\d.]+ms){5}\s+(?P<step>[\d.]+)ms(\s+[\d.]+){2}\s+([\d.]+ms|-)$")
    steps = {m["name"]: float(m["step"]) / 1e3 for m in map(row.match, output.splitlines()) if m}
    return steps, output


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seconds", type=float, default=3.0, help="least time per measurement")
    parser.add_argument("--bench-binary", help="a built trainer bench binary instead of `cargo bench`")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"threads {args.threads}, batch {BATCH}; PennyLane {qml.__version__}, torch {torch.__version__}, "
        f"Python {sys.version.split()[0]}; load {os.getloadavg()[0]:.2f}"
    )
    trainer, bench_output = trainer_steps(args.threads, args.bench_binary)
    rows = []
    for arch, (blocks, parameters) in ARCHITECTURES.items():
        circuits = {
            "plain torch": TorchCircuit(),
            "PennyLane default.qubit + torch (backprop)": pennylane_circuit("default.qubit", "backprop"),
            "PennyLane lightning.qubit + torch (adjoint)": pennylane_circuit("lightning.qubit", "adjoint"),
        }
        print(f"{arch}: checking the circuits agree")
        check_circuits(circuits)
        bench_name = next((n for n in trainer if n.startswith(arch)), None)
        if bench_name is None:
            sys.exit(f"the trainer bench printed no row for {arch}:\n{bench_output}")
        ours = trainer[bench_name]
        rows.append((arch, "this trainer (burn, data-parallel step)", ours))
        for name, circuit in circuits.items():
            model = Hybrid(blocks, circuit)
            count = sum(p.numel() for p in model.parameters())
            assert count == parameters, f"{arch} in torch has {count} parameters, not {parameters}"
            few = 3 if "lightning" in name else 10
            rows.append((arch, name, time_steps(model, args.seconds, few)))
    print(bench_output.rstrip())
    print()
    print("| model | implementation | ms per step | this trainer is ... x faster |")
    print("|---|---|---|---|")
    for arch, name, seconds in rows:
        ours = next(s for a, n, s in rows if a == arch and n.startswith("this trainer"))
        ratio = "" if name.startswith("this trainer") else f"{seconds / ours:.1f}"
        print(f"| {arch} | {name} | {seconds * 1e3:.2f} | {ratio} |")


if __name__ == "__main__":
    main()

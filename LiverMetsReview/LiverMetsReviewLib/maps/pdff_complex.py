"""The complex-data refinement of the PDFF fit: both magnitude solutions refined with a field map and a phase.

Complex data add a field map psi and one phase phi per voxel: both magnitude solutions (:mod:`.pdff_fit`) are
refined on S_n = (W + F c_n) exp(-R TE_n) exp(i (2 pi psi TE_n + phi)).

Times in ms, rates in 1/ms, psi in kHz inside this module; signals scaled so that a voxel's largest echo is 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def complex_model(p: np.ndarray, te: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The complex signal of parameters p = (W, F, R, psi, phi) (scaled units, t in ms, R in 1/ms, psi in kHz)."""
    w, f, r, psi, phi = p
    return (w + f * c[:, None]) * np.exp(-te[:, None] * r + 1j * (2.0 * np.pi * te[:, None] * psi + phi))


def _complex_model(p: np.ndarray, te: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """S_n = (W + F c_n) exp(-R t_n) exp(i (2 pi psi t_n + phi)) and its derivatives; p = (W, F, R, psi, phi),
    t in ms, R in 1/ms, psi (field map) in kHz."""
    w, f, r, psi, phi = p
    e = np.exp(-te[:, None] * r + 1j * (2.0 * np.pi * te[:, None] * psi + phi))
    model = (w + f * c[:, None]) * e
    return model, [e, c[:, None] * e, -te[:, None] * model, 2j * np.pi * te[:, None] * model, 1j * model]


def _complex_start(yc: np.ndarray, p: np.ndarray, te: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(W, F, R) plus the field map and initial phase that best explain the measured phase given that mixture."""
    a = (p[0] + p[1] * c[:, None]) * np.exp(-te[:, None] * p[2])
    z = yc * np.conj(a)                                    # phase left: phi + 2 pi psi t
    pairs = z[1:] * np.conj(z[:-1])
    dt = np.diff(te)[:, None]
    wts = np.abs(pairs)
    psi = np.sum(wts * np.angle(pairs) / (2.0 * np.pi * dt), axis=0) / np.maximum(np.sum(wts, axis=0), 1e-300)
    phi = np.angle(np.sum(z * np.exp(-2j * np.pi * te[:, None] * psi), axis=0))
    return np.concatenate([p[:3], psi[None], phi[None]])


def _complex_lm(yc: np.ndarray, p: np.ndarray, te: np.ndarray, c: np.ndarray, r_lo: float, r_hi: float,
                cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Bounded LM on the complex residual (W, F >= 0 real with one phase), all columns at once."""
    p = p.copy()
    model, _ = _complex_model(p, te, c)
    cost = np.sum(np.abs(yc - model) ** 2, axis=0)
    lam = np.full(yc.shape[1], float(cfg["initial_damping"]))
    tol = float(cfg["relative_cost_tolerance"])
    act = np.arange(yc.shape[1])
    eye = np.eye(5)
    for _ in range(int(cfg["complex_iterations"])):
        if act.size == 0:
            break
        ya, pa, ca, la = yc[:, act], p[:, act], cost[act], lam[act]
        model, jac = _complex_model(pa, te, c)
        res = ya - model
        jj = np.stack(jac)                                 # (5, n_echo, n)
        h = np.einsum("aen,ben->nab", jj.conj(), jj).real
        g = np.einsum("aen,en->na", jj.conj(), res).real
        diag = np.einsum("naa->na", h)
        h = h + (la[:, None, None] * diag[:, :, None] + 1e-12 * diag.sum(1)[:, None, None] + 1e-300) * eye
        d = np.linalg.solve(h, g[:, :, None])[:, :, 0].T
        new = pa + d
        new[0] = np.maximum(new[0], 0.0)
        new[1] = np.maximum(new[1], 0.0)
        new[2] = np.clip(new[2], r_lo, r_hi)
        new[4] = np.angle(np.exp(1j * new[4]))
        new_model, _ = _complex_model(new, te, c)
        new_cost = np.sum(np.abs(ya - new_model) ** 2, axis=0)
        ok = np.isfinite(new_cost) & (new_cost < ca)
        gain = np.where(ok, ca - new_cost, 0.0)
        p[:, act] = np.where(ok, new, pa)
        cost[act] = np.where(ok, new_cost, ca)
        lam[act] = np.where(ok, np.maximum(la * 0.3, 1e-12), la * 10.0)
        step = np.max(np.abs(d) * np.array([[1.0], [1.0], [1e3], [1e3], [1.0]]), axis=0) / (
            np.abs(pa[0]) + np.abs(pa[1]) + 1.0)
        done = (ok & (gain <= tol * ca + 1e-28)) | (lam[act] > 1e10) | (cost[act] <= 1e-28) | (step < 1e-10)
        act = act[~done]
    return p, cost


def complex_sides(yc: np.ndarray, pw: np.ndarray, pf: np.ndarray, te: np.ndarray, c: np.ndarray, r_lo: float,
                  r_hi: float, cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both magnitude solutions refined on the complex data: (water-side params, cost, fat-side params, cost)."""
    n = yc.shape[1]
    y2 = np.concatenate([yc, yc], axis=1)
    start = _complex_start(y2, np.concatenate([pw, pf], axis=1), te, c)
    p, cost = _complex_lm(y2, start, te, c, r_lo, r_hi, cfg)
    return p[:, :n], cost[:n], p[:, n:], cost[n:]

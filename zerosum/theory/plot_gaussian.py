"""Figure 4 of Ilyas et al. (2019), reproduced exactly: robust MLE of two Gaussians in 2-D.

``python -m zerosum.theory.plot_gaussian --out gaussian_figure4.png``

Left: the data, the (trace-normalised) learned covariance ellipses and decision boundaries as the L2
radius ε grows: the covariance blends toward the identity (Theorem 2) and the boundary turns toward
the one orthogonal to μ. Right: condition number of Σ_r and the cosine between the classifier's
gradient Σ_r^{-1}μ_r and μ_r (Theorem 3) versus ε.
"""

from __future__ import annotations

import argparse
import math

import torch

from zerosum.theory.gaussian import DTYPE, condition_number, gradient_alignment, robust_mle, sample, standard_mle


def figure4(out: str = "gaussian_figure4.png", eps_values=(0.0, 0.25, 0.5, 1.0, 2.0), n: int = 600,
            steps: int = 300, seed: int = 0) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    angle = math.radians(30)
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=DTYPE)
    sigma_star = rot @ torch.diag(torch.tensor([1.0, 0.05], dtype=DTYPE)) @ rot.T
    mu_star = torch.tensor([0.6, 0.6], dtype=DTYPE)
    x, y = sample(n, mu_star, sigma_star, torch.Generator().manual_seed(seed))
    fits = {}
    for eps in eps_values:
        if eps == 0:
            fits[eps] = standard_mle(x, y)
        else:
            fit = robust_mle(x, y, eps=eps, steps=steps, lr=0.03)
            fits[eps] = (fit.mu, fit.sigma)

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 5))
    ax.scatter(*x[y > 0].T, s=3, alpha=0.3, c="tab:blue")
    ax.scatter(*x[y < 0].T, s=3, alpha=0.3, c="tab:red")
    cmap = plt.get_cmap("viridis")
    t = torch.linspace(0, 2 * math.pi, 200, dtype=DTYPE)
    circle = torch.stack([t.cos(), t.sin()])
    for i, (eps, (mu, sigma)) in enumerate(fits.items()):
        color = cmap(i / max(1, len(fits) - 1))
        s, U = torch.linalg.eigh(sigma / torch.trace(sigma) * 2)  # same trace for every ε
        ellipse = U @ (s.sqrt()[:, None] * circle)
        ax.plot(*(mu[:, None] + ellipse), color=color, label=f"ε={eps}")
        w = torch.linalg.solve(sigma, mu)  # boundary x^T w = 0
        direction = torch.stack([-w[1], w[0]]) / w.norm()
        ax.plot(*torch.stack([-3 * direction, 3 * direction]).T, color=color, ls="--", lw=1)
    ax.arrow(0, 0, *mu_star.tolist(), width=0.02, color="k")
    ax.set_aspect("equal")
    ax.set_xlim(-3, 3)
    ax.set_ylim(-3, 3)
    ax.set_title("Σ_r (trace-normalised) and decision boundary", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    eps_list = list(fits)
    kappa = [condition_number(fits[e][1]).item() for e in eps_list]
    cos = [gradient_alignment(*fits[e]).item() for e in eps_list]
    ax2.plot(eps_list, kappa, "o-", label="condition number of Σ_r")
    ax2.set_xlabel("ε (L2)")
    ax2.set_ylabel("κ(Σ_r)")
    ax3 = ax2.twinx()
    ax3.plot(eps_list, cos, "s-", color="tab:orange", label="cos(∇f_r, μ)")
    ax3.set_ylabel("cos(Σ_r⁻¹μ_r, μ_r)")
    ax2.set_title("Theorems 2-3: blending toward I, gradient alignment", fontsize=10)
    handles = ax2.get_legend_handles_labels()[0] + ax3.get_legend_handles_labels()[0]
    ax2.legend(handles, [h.get_label() for h in handles], loc="center right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return {"eps": eps_list, "condition_number": kappa, "alignment": cos}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gaussian_figure4.png")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    result = figure4(args.out, steps=args.steps)
    for e, k, c in zip(result["eps"], result["condition_number"], result["alignment"]):
        print(f"eps={e:<5} condition number={k:8.3f} gradient alignment={c:.4f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

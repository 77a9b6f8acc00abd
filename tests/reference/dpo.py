"""PyTorch references for recforge's preference-optimization kernels (candidate_logprobs, dpo_loss).

Usage: dpo.py OP DIR. Reads the inputs a C++ test wrote to DIR as .npy files, computes OP in float64
with PyTorch (autograd for every gradient) and writes each output as DIR/ref_<name>.npy. A test
that checks several configurations in one run writes num_cases and prefixes each case's files with
c0_, c1_, ...
The losses follow TRL's DPOTrainer (sigmoid with label smoothing, robust, ipo, hinge) and S-DPO
(Chen et al. 2024), written here independently of the C++ formulation.
Only uses what both PyTorch 1.13 (Debian) and 2.x provide.
"""
import sys

import torch
import torch.nn.functional as F

from kernels import Case

torch.set_default_dtype(torch.float64)

LOSS_TYPES = ["sigmoid", "ipo", "hinge", "robust", "sdpo"]  # the order of enum class DpoLoss



def log_softmax_gather(hidden, wte, offset, V, candidates):
    """log_softmax(hidden · wte[offset : offset + V]ᵀ) at the candidates [N, K]."""
    logits = hidden @ wte[offset:offset + V].T
    return F.log_softmax(logits, dim=1).gather(1, candidates), torch.logsumexp(logits, dim=1)


def pair_losses(policy, reference, loss_type, beta, eps):
    """Per-pair DPO losses [N] for policy, reference [N, K] (column 0 chosen)."""
    if loss_type == "sdpo":
        # −log σ(−log Σ_{k≥1} exp(β((π_k − ρ_k) − (π_0 − ρ_0))))
        ratios = policy - reference
        inner = beta * (ratios[:, 1:] - ratios[:, :1])
        return -F.logsigmoid(-torch.logsumexp(inner, dim=1))
    pi_logratios = policy[:, :1] - policy[:, 1:]
    ref_logratios = reference[:, :1] - reference[:, 1:]
    logits = pi_logratios - ref_logratios  # [N, K − 1]
    if loss_type == "sigmoid":
        losses = (-F.logsigmoid(beta * logits) * (1 - eps) - F.logsigmoid(-beta * logits) * eps)
    elif loss_type == "robust":
        losses = ((-F.logsigmoid(beta * logits) * (1 - eps) + F.logsigmoid(-beta * logits) * eps)
                  / (1 - 2 * eps))
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * logits)
    else:
        raise ValueError(loss_type)
    return losses.mean(dim=1)


def pair_metrics(policy, reference, beta):
    """[N, 4]: chosen reward, mean rejected reward, margin, accuracy."""
    rewards = beta * (policy - reference).detach()
    chosen, rejected = rewards[:, 0], rewards[:, 1:].mean(dim=1)
    return torch.stack([chosen, rejected, chosen - rejected, (chosen > rejected).double()], dim=1)


def loss_params(sub):
    return LOSS_TYPES[int(sub.scalar("type"))], sub.scalar("beta"), sub.scalar("label_smoothing")


def candidate_logprobs(case):
    """Per case: logps = log_softmax(hidden · wte[offset : offset + V]ᵀ) gathered at the
    candidates, lse; dhidden, dwte = dwte0 + autograd of Σ dlogps · logps (the whole table)."""
    for sub in case.cases():
        hidden = sub.tensor("hidden", requires_grad=True)
        wte = sub.tensor("wte", requires_grad=True)
        offset, V = int(sub.scalar("offset")), int(sub.scalar("V"))
        logps, lse = log_softmax_gather(hidden, wte, offset, V, sub.ints("candidates"))
        (sub.tensor("dlogps") * logps).sum().backward()
        sub.write("logps", logps)
        sub.write("lse", lse)
        sub.write("dhidden", hidden.grad)
        sub.write("dwte", sub.tensor("dwte0") + wte.grad)


def dpo_loss(case):
    """Per case: per-pair losses, dpolicy = autograd of loss_scale · Σ losses, metrics."""
    for sub in case.cases():
        policy = sub.tensor("policy", requires_grad=True)
        reference = sub.tensor("reference")
        loss_type, beta, eps = loss_params(sub)
        losses = pair_losses(policy, reference, loss_type, beta, eps)
        (sub.scalar("loss_scale") * losses.sum()).backward()
        sub.write("losses", losses)
        sub.write("dpolicy", policy.grad)
        sub.write("metrics", pair_metrics(policy, reference, beta))


def dpo_end_to_end(case):
    """Per case: the policy's candidate log-probs from hidden and the tied table, the reference's
    from ref_hidden (no gradient), the DPO loss over the pairs; dhidden and dwte = dwte0 + autograd
    of loss_scale · Σ losses."""
    for sub in case.cases():
        hidden = sub.tensor("hidden", requires_grad=True)
        wte = sub.tensor("wte", requires_grad=True)
        offset, V = int(sub.scalar("offset")), int(sub.scalar("V"))
        candidates = sub.ints("candidates")
        policy, _ = log_softmax_gather(hidden, wte, offset, V, candidates)
        with torch.no_grad():
            reference, _ = log_softmax_gather(sub.tensor("ref_hidden"), sub.tensor("ref_wte"),
                                              offset, V, candidates)
        loss_type, beta, eps = loss_params(sub)
        losses = pair_losses(policy, reference, loss_type, beta, eps)
        (sub.scalar("loss_scale") * losses.sum()).backward()
        sub.write("losses", losses)
        sub.write("dhidden", hidden.grad)
        sub.write("dwte", sub.tensor("dwte0") + wte.grad)


OPS = {"candidate_logprobs": candidate_logprobs, "dpo_loss": dpo_loss,
       "dpo_end_to_end": dpo_end_to_end}

if __name__ == "__main__":
    op, directory = sys.argv[1], sys.argv[2]
    OPS[op](Case(directory))

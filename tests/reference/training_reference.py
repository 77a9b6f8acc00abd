"""What the model references (model.py, llama.py) write for a C++ test, llm.c's test_gpt2 method:
the logits, the loss and the gradient of every trained tensor after one forward and backward, then
the losses of a few AdamW steps (matrices decayed, vectors not)."""
import pathlib

import numpy as np
import torch


def save(directory, name, value):
    np.save(pathlib.Path(directory) / f"ref_{name}.npy",
            np.asarray(value.detach().numpy() if torch.is_tensor(value) else value,
                       dtype=np.float64))


def write_step_references(directory, loss_and_logits, params, trained, scalar):
    """loss_and_logits() → (loss, logits) of the model over params (a dict of tensors, `trained`
    the names that require grad); scalar(name) reads the test's AdamW settings and step count."""
    loss, logits = loss_and_logits()
    loss.backward()
    save(directory, "logits", logits)
    save(directory, "loss", loss)
    for name in trained:
        save(directory, "grad." + name, params[name].grad)

    decayed = [params[n] for n in trained if params[n].dim() == 2]
    not_decayed = [params[n] for n in trained if params[n].dim() == 1]
    groups = [{"params": decayed, "weight_decay": scalar("weight_decay")}]
    if not_decayed:
        groups.append({"params": not_decayed, "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups, lr=scalar("lr"),
                                  betas=(scalar("beta1"), scalar("beta2")), eps=scalar("eps"))
    losses = []
    for _ in range(int(scalar("steps"))):
        optimizer.zero_grad()
        loss, _ = loss_and_logits()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    save(directory, "losses", losses)

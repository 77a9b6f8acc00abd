#!/usr/bin/python3
"""The comparison recipe of issue 3: SASRec trained with full-softmax cross-entropy (Klenitskiy &
Vasilev, RecSys'23) in PyTorch, on a `seq` file (user item1 item2 ..., chronological).

Protocol (the project's standard): leave-one-out per user (last item test, second-to-last
validation, the rest train); full ranking over all items with each user's earlier items excluded
(their scores set to -inf; the target itself is never excluded); validation after every epoch, test
at the best validation epoch; early stopping with patience. Model: learned item and position
embeddings (padded, right-aligned, max_len), n_layer pre-LN transformer blocks with causal
attention, tied output layer. Adam, batch of users, padded [B, max_len] tensors.

Usage: benchmarks/sasrec_ce_pytorch.py DATA.txt [--epochs 200 --patience 10 --threads 2]
Prints one JSON line per epoch and a final JSON object.
"""
import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn


def load_sequences(path):
    users = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                users.append([int(x) for x in parts[1:]])
    num_items = max(max(s) for s in users)  # items are 1..num_items; 0 is padding
    return users, num_items


class SASRec(nn.Module):
    def __init__(self, num_items, max_len, d, layers, heads, dropout):
        super().__init__()
        self.item = nn.Embedding(num_items + 1, d, padding_idx=0)
        self.pos = nn.Embedding(max_len, d)
        self.drop = nn.Dropout(dropout)
        block = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.blocks = nn.TransformerEncoder(block, layers)
        self.norm = nn.LayerNorm(d)
        mask = torch.triu(torch.full((max_len, max_len), float("-inf")), diagonal=1)
        self.register_buffer("causal", mask)

    def forward(self, x):  # x [B, T] right-aligned, 0 = padding
        T = x.shape[1]
        h = self.item(x) + self.pos(torch.arange(T, device=x.device))[None]
        h = self.drop(h) * (x != 0).unsqueeze(-1)  # padding stays zero (SASRec's timeline mask)
        h = self.blocks(h, mask=self.causal[:T, :T])
        return self.norm(h)

    def scores(self, h):
        return h @ self.item.weight.T


def right_aligned(seqs, max_len):
    out = np.zeros((len(seqs), max_len), dtype=np.int64)
    for i, s in enumerate(seqs):
        s = s[-max_len:]
        if s:
            out[i, -len(s):] = s
    return torch.from_numpy(out)


def evaluate(model, users, which, max_len, ks=(1, 5, 10, 20), batch=1024):
    model.eval()
    cut = 2 if which == "valid" else 1
    ranks = []
    with torch.no_grad():
        for b in range(0, len(users), batch):
            chunk = [u for u in users[b:b + batch] if len(u) >= 3]
            hist = [u[:-cut] for u in chunk]
            target = torch.tensor([u[-cut] for u in chunk])
            h = model(right_aligned(hist, max_len))[:, -1]
            s = model.scores(h)
            s[:, 0] = -float("inf")
            target_score = s[torch.arange(len(chunk)), target].clone()
            for i, hi in enumerate(hist):
                s[i, torch.tensor(hi)] = -float("inf")
            s[torch.arange(len(chunk)), target] = target_score
            ranks.append((s > target_score[:, None]).sum(1))
    ranks = torch.cat(ranks).double()
    out = {f"hr@{k}": (ranks < k).double().mean().item() for k in ks}
    out.update({f"ndcg@{k}": ((ranks < k).double() / torch.log2(ranks + 2)).mean().item()
                for k in ks})
    out["mrr"] = (1.0 / (ranks + 1)).mean().item()
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=1)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-minutes", type=float, default=0,
                   help="stop training after this much wall time (0: no limit), then test")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    users, num_items = load_sequences(a.data)
    train = [u[:-2] if len(u) >= 3 else u for u in users]
    train = [t for t in train if len(t) >= 2]
    model = SASRec(num_items, a.max_len, a.d, a.layers, a.heads, a.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    loss_fn = nn.CrossEntropyLoss(ignore_index=0)
    best, best_epoch, best_state, bad = -1.0, -1, None, 0
    run_start = time.time()
    stopped_by = "patience or epochs"
    for epoch in range(a.epochs):
        if a.max_minutes and time.time() - run_start > 60 * a.max_minutes:
            stopped_by = "time budget"
            break
        model.train()
        start = time.time()
        order = rng.permutation(len(train))
        total, count = 0.0, 0
        for b in range(0, len(order), a.batch):
            seqs = [train[i][-(a.max_len + 1):] for i in order[b:b + a.batch]]
            x = right_aligned([s[:-1] for s in seqs], a.max_len)
            y = right_aligned([s[1:] for s in seqs], a.max_len)
            logits = model.scores(model(x))
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            count += 1
        seconds = time.time() - start
        valid = evaluate(model, users, "valid", a.max_len)
        print(json.dumps({"epoch": epoch + 1, "loss": total / count, "epoch_seconds": seconds,
                          **{"valid/" + k: v for k, v in valid.items()}}), flush=True)
        if valid["ndcg@10"] > best:
            best, best_epoch, bad = valid["ndcg@10"], epoch + 1, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= a.patience:
                break
    model.load_state_dict(best_state)
    test = evaluate(model, users, "test", a.max_len)
    print(json.dumps({"best_epoch": best_epoch, "epochs_run": epoch + 1, "stopped_by": stopped_by,
                      "setting": "full ranking, earlier items excluded",
                      **{"test/" + k: v for k, v in test.items()}}), flush=True)


if __name__ == "__main__":
    main()

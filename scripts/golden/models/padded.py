"""The padded batches of the training goldens: rows right-padded to the longest (pad id 0, attention 0, label -100)."""
import torch


def batch(rows, idx):
    L = max(len(rows[i]["input_ids"]) for i in idx)
    ids, att, lab = [], [], []
    for i in idx:
        r = rows[i]
        n = len(r["input_ids"])
        ids.append(r["input_ids"] + [0] * (L - n))
        att.append([1] * n + [0] * (L - n))
        lab.append(r["labels"] + [-100] * (L - n))
    return torch.tensor(ids), torch.tensor(att), torch.tensor(lab)

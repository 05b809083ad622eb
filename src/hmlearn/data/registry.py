"""The 20 standard HMC benchmark datasets: files, checksums, expected sizes, published settings.

Sources: the public distribution of the datasets (Clus / C-HMCNN ``HMC_data`` layout) and the
C-HMCNN paper (Giunchiglia & Lukasiewicz 2020): feature counts after one-hot encoding, the
number of evaluated nodes, and the hyper-parameters of METHOD.md section 10. SHA-256 sums are
those of the distributed files; where no sum is known (files not available to the project),
a download is accepted with a warning and its sum recorded beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hmlearn.errors import DatasetNotFoundError

PUBLIC_BASE_URL = "https://raw.githubusercontent.com/EGiunchiglia/C-HMCNN/master/HMC_data/"
GO_ROOTS = ("root", "GO0003674", "GO0005575", "GO0008150")

Family = Literal["FUN", "GO", "others"]


@dataclass(frozen=True)
class DatasetSpec:
    """What the registry knows about one standard dataset."""

    name: str
    family: Family
    files: dict[str, str]  # split -> path relative to a data root
    n_features: int  # after one-hot encoding of nominal attributes
    n_nodes: int  # evaluated nodes (roots excluded)
    hidden_dim: int
    epochs: int
    lr: float
    batch_size: int = 4
    dropout: float = 0.7
    weight_decay: float = 1e-5
    num_layers: int = 3

    @property
    def convention(self) -> Literal["paths", "edges"]:
        return "edges" if self.family == "GO" else "paths"

    @property
    def not_evaluated(self) -> tuple[str, ...]:
        return GO_ROOTS if self.family == "GO" else ("root",)

    @property
    def n_outputs(self) -> int:
        """Network outputs: evaluated nodes plus the roots, as in the published models."""
        return self.n_nodes + len(self.not_evaluated)

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.files)

    @property
    def training_splits(self) -> tuple[str, ...]:
        """The splits that make up the benchmark's training set (train + valid)."""
        return tuple(s for s in ("train", "valid") if s in self.files)

    def sha256(self, split: str) -> str | None:
        return SHA256.get(self.files[split])

    def url(self, split: str) -> str:
        return PUBLIC_BASE_URL + self.files[split]

    def hyperparameters(self) -> dict[str, float | int]:
        return {
            "hidden_dim": self.hidden_dim, "epochs": self.epochs, "lr": self.lr, "batch_size": self.batch_size,
            "dropout": self.dropout, "weight_decay": self.weight_decay, "num_layers": self.num_layers,
        }


def _yeast(name: str, family: Family, n_features: int, n_nodes: int, hidden: int, epochs: int) -> DatasetSpec:
    folder = f"datasets_{family}/{name}_{family}/{name}_{family}"
    files = {split: f"{folder}.{split}.arff" for split in ("train", "valid", "test")}
    return DatasetSpec(f"{name}_{family}", family, files, n_features, n_nodes, hidden, epochs, 1e-4)


def _other(name: str, train: str, test: str, n_features: int, n_nodes: int, hidden: int, epochs: int) -> DatasetSpec:
    files = {"train": f"others/{train}", "test": f"others/{test}"}
    return DatasetSpec(f"{name}_others", "others", files, n_features, n_nodes, hidden, epochs, 1e-5)


# name: features after one-hot, evaluated nodes (FUN, GO), hidden/epochs (FUN), hidden/epochs (GO)
_YEAST = {
    "cellcycle": (77, 499, 4122, (500, 106), (1000, 62)),
    "derisi": (63, 499, 4116, (500, 67), (500, 91)),
    "eisen": (79, 461, 3570, (500, 110), (500, 123)),
    "expr": (561, 499, 4128, (1250, 20), (4000, 70)),
    "gasch1": (173, 499, 4122, (1000, 42), (500, 122)),
    "gasch2": (52, 499, 4128, (500, 123), (500, 177)),
    "seq": (529, 499, 4130, (2000, 13), (9000, 45)),
    "spo": (86, 499, 4116, (250, 115), (500, 103)),
}

DATASETS: dict[str, DatasetSpec] = {}
for _family in ("FUN", "GO"):  # all FUN datasets first, then all GO, as the papers list them
    for _name, (_features, _fun_nodes, _go_nodes, _fun, _go) in _YEAST.items():
        _nodes, (_hidden, _epochs) = (_fun_nodes, _fun) if _family == "FUN" else (_go_nodes, _go)
        DATASETS[f"{_name}_{_family}"] = _yeast(_name, _family, _features, _nodes, _hidden, _epochs)
for _spec in (
    _other("diatoms", "Diatoms_train.arff", "Diatoms_test.arff", 371, 398, 2000, 474),
    _other("enron", "Enron_corr_trainvalid.arff", "Enron_corr_test.arff", 1001, 56, 1000, 133),
    _other("imclef07a", "ImCLEF07A_Train.arff", "ImCLEF07A_Test.arff", 80, 96, 1000, 592),
    _other("imclef07d", "ImCLEF07D_Train.arff", "ImCLEF07D_Test.arff", 80, 46, 1000, 588),
):
    DATASETS[_spec.name] = _spec

# Published C-HMCNN AU(PRC), mean of 10 seeds (METHOD.md section 9).
PUBLISHED_AUPRC: dict[str, float] = {
    "cellcycle_FUN": 0.255, "derisi_FUN": 0.195, "eisen_FUN": 0.306, "expr_FUN": 0.302,
    "gasch1_FUN": 0.286, "gasch2_FUN": 0.258, "seq_FUN": 0.292, "spo_FUN": 0.215,
    "cellcycle_GO": 0.413, "derisi_GO": 0.370, "eisen_GO": 0.455, "expr_GO": 0.447,
    "gasch1_GO": 0.436, "gasch2_GO": 0.414, "seq_GO": 0.446, "spo_GO": 0.382,
    "diatoms_others": 0.758, "enron_others": 0.756, "imclef07a_others": 0.956, "imclef07d_others": 0.927,
}

SHA256: dict[str, str] = {
    "datasets_FUN/cellcycle_FUN/cellcycle_FUN.test.arff": "2dd7798e23375743b2e31e0236d9a6cb7a73351a777efe381946105417fd1299",
    "datasets_FUN/cellcycle_FUN/cellcycle_FUN.train.arff": "4c97ccf6f15b49392b3bda7fec1f601ed921746ef0b78d6fcd4c85a0424dfd66",
    "datasets_FUN/cellcycle_FUN/cellcycle_FUN.valid.arff": "8914f37522a484ce1790625e4993d89eed73ce4f6d667711c691a389e3a4f982",
    "datasets_FUN/derisi_FUN/derisi_FUN.test.arff": "8507f5c56bedb86b737632972e22385859aa9f6cd2788c899eb0f5bb0bae9ba0",
    "datasets_FUN/derisi_FUN/derisi_FUN.train.arff": "b690141953247c3e78a6a65840ae6bcdbff5630c34ab7cef04b703f8844ab847",
    "datasets_FUN/derisi_FUN/derisi_FUN.valid.arff": "7e68397a67cb574c28789fb64ecbd6e431a6fdeaa7ee64e0bd1cd6b4e855c424",
    "datasets_FUN/eisen_FUN/eisen_FUN.test.arff": "bb55674c313f9916f5b3ee675d6bc0e7463216f927035de28a539187cdc31dc1",
    "datasets_FUN/eisen_FUN/eisen_FUN.train.arff": "6c92516517f6bb041ae1058fc948444bc3117e0c3b394743d33765122da89fbb",
    "datasets_FUN/eisen_FUN/eisen_FUN.valid.arff": "f60f30c2806818ea840bb65fe8758a0da6cd257c0827b43661f77fab5ccaf091",
    "datasets_FUN/gasch1_FUN/gasch1_FUN.test.arff": "cab4d135b93adea14c65364d38d302fd3d09b287fc0cba1d58acc2b2f63307b7",
    "datasets_FUN/gasch1_FUN/gasch1_FUN.train.arff": "bc4615eb1cc93e5db3c757410f81dffce3eb3e39fd98924de4b78f568c344618",
    "datasets_FUN/gasch1_FUN/gasch1_FUN.valid.arff": "07b42428dca0b88731f35d7461a23502410eb648aee12b770fa82d90eb31337d",
    "datasets_FUN/seq_FUN/seq_FUN.test.arff": "1336093a2b6712000f04db55cd36bc3fc0d799a0551f173f5b47a04191c29dd9",
    "datasets_FUN/seq_FUN/seq_FUN.train.arff": "619ada644b8c3e5c7d2aef0a56bf24797e4c844954ec5bc75f7b984521ba475c",
    "datasets_FUN/seq_FUN/seq_FUN.valid.arff": "564effba89ad5c3a7d3992e841cf9d9165648b075815113ec31b5c16e91cd4bd",
    "datasets_FUN/spo_FUN/spo_FUN.test.arff": "18a9be63b28d636e767b5886121dee5ddc8ae5a61a05098408d1b8991419f284",
    "datasets_FUN/spo_FUN/spo_FUN.train.arff": "8049c3a620b8fcbbbe3f195ccca7dafb36372fce418d9bfe49d6ffadd4bcf6ca",
    "datasets_FUN/spo_FUN/spo_FUN.valid.arff": "5ab7eaab567b80144299761abec833aa1a4a1115a347819362d06a149b43b0cf",
    "datasets_GO/derisi_GO/derisi_GO.test.arff": "8221ded151b87dbcb6599b686ed1db6cb8621aa99a9930358f656b3f26957f93",
    "datasets_GO/derisi_GO/derisi_GO.train.arff": "7e1b88f652bfe4ef52690677d6daeb31ed3c418b40cf48a3ffbd93bc6352388d",
    "datasets_GO/derisi_GO/derisi_GO.valid.arff": "ba1d6cefd0cf9ab149206dff54726af7bff5ff166982558006634482974cf246",
    "datasets_GO/spo_GO/spo_GO.test.arff": "f9b151a2c8f48c18ac6b65d259fffaec749c5143b82b562a038e4be970da3691",
    "datasets_GO/spo_GO/spo_GO.train.arff": "10569d71726d0cd130e07e23f290ecdae32d5e31b0af6b0ea6fd0a8545fec72e",
    "datasets_GO/spo_GO/spo_GO.valid.arff": "a60d2dd1d0c6c0141d7d9fc5cbb78ef0da2b6485ea9917cde613df01afb58f18",
    "others/Diatoms_test.arff": "04c4ae6e90297e3da1771615f0ac2a535a0ea5bd4c0625d43052b5130e2f6a09",
    "others/Diatoms_train.arff": "19baf9a53db0d3e636481c3b80d0f6532ddb9586f829e22c9cb326effc917e36",
    "others/Enron_corr_test.arff": "1ae0864a6574b14a5e1b9d614d38ae66ede8c0a253774161dfdf42ebe6d49d11",
    "others/Enron_corr_trainvalid.arff": "8265622b84c9ebe6603b64ad5ce82d78ed8709bd66793b80f14f0018d5ef51bf",
    "others/ImCLEF07A_Test.arff": "e95c33e0bc8a23be9b093bc34268404c47f304739bd73eceda58f8cbc42a90fb",
    "others/ImCLEF07A_Train.arff": "fe240039db5272579924897bcac6c0c38b6cb117277aa49281a2ec936b01e7c9",
}


def get_spec(name: str) -> DatasetSpec:
    """Look a dataset up by name, case-insensitively (``derisi_fun`` finds ``derisi_FUN``)."""
    if name in DATASETS:
        return DATASETS[name]
    folded = {key.lower(): spec for key, spec in DATASETS.items()}
    if name.lower() in folded:
        return folded[name.lower()]
    import difflib

    close = difflib.get_close_matches(name.lower(), list(folded), n=1, cutoff=0.6)
    hint = f"did you mean {folded[close[0]].name}? " if close else ""
    raise DatasetNotFoundError(
        f"unknown dataset {name!r}; {hint}standard datasets: {', '.join(DATASETS)} (or give the path of an ARFF, "
        "CSV or Parquet file)"
    )

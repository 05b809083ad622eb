from __future__ import annotations

import numpy as np
import pytest

from hmlearn.data.preprocessing import fit_transform_splits
from hmlearn.errors import HMLError


def test_fitted_on_train_only_and_applied_to_the_others():
    rng = np.random.default_rng(0)
    train = rng.normal(5.0, 2.0, size=(200, 3))
    test = rng.normal(8.0, 2.0, size=(100, 3))
    train[0, 0] = np.nan
    test[0, 1] = np.nan
    _, (train_out, test_out) = fit_transform_splits(train, test)
    np.testing.assert_allclose(train_out.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train_out.std(axis=0), 1.0, atol=0.01)
    assert test_out.mean() > 1.0  # shifted test data stays shifted: scaler did not see it
    train_mean = np.nanmean(train[:, 1])
    expected = (train_mean - train_mean) / np.nanstd(train[1:, 1])
    assert test_out[0, 1] == pytest.approx(expected, abs=1e-6)  # imputed with the TRAIN mean
    assert train_out.dtype == np.float32


def test_all_missing_column_is_kept_and_infinities_are_imputed():
    train = np.array([[1.0, np.nan], [3.0, np.nan], [np.inf, np.nan]])
    _, (out,) = fit_transform_splits(train)
    assert out.shape == (3, 2) and np.isfinite(out).all()
    assert out[2, 0] == pytest.approx(0.0)


def test_feature_count_mismatch_is_refused():
    standardizer, _ = fit_transform_splits(np.ones((5, 4)))
    with pytest.raises(HMLError, match=r"shape \(2, 3\), the model was fitted on 4 features"):
        standardizer.transform(np.ones((2, 3)))


def test_value_that_overflows_once_standardised_is_refused_naming_row_and_column():
    standardizer, _ = fit_transform_splits(np.array([[1.0, 0.001], [2.0, 0.002], [3.0, 0.003]]))
    new = np.array([[1.0, 0.001], [2.0, 1e38]])
    with pytest.raises(HMLError, match=r"^new.csv: row 2, column 'b': 1e\+38 overflows float32 after standardisation"):
        standardizer.transform(new, source="new.csv", feature_names=["a", "b"])
    with pytest.raises(HMLError, match=r"^row 2, column 2: 1e\+38 overflows float32"):
        standardizer.transform(new)

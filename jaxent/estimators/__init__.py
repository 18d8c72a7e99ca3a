"""Estimators of information measures from samples: histogram counts, nearest
neighbours and Gaussian copulas (continuous samples), and variational lower bounds on
mutual information.

Batched over leading axes; jit-, vmap- and grad-able like the rest of jaxent.
"""

from jaxent.estimators._copula import (
    gaussian_copula_conditional_mutual_information as gaussian_copula_conditional_mutual_information,
)
from jaxent.estimators._copula import gaussian_copula_entropy as gaussian_copula_entropy
from jaxent.estimators._copula import (
    gaussian_copula_mutual_information as gaussian_copula_mutual_information,
)
from jaxent.estimators._counts import entropy_from_counts as entropy_from_counts
from jaxent.estimators._knn import knn_kl_divergence as knn_kl_divergence
from jaxent.estimators._knn import kozachenko_leonenko_entropy as kozachenko_leonenko_entropy
from jaxent.estimators._knn import (
    ksg_conditional_mutual_information as ksg_conditional_mutual_information,
)
from jaxent.estimators._knn import ksg_mutual_information as ksg_mutual_information
from jaxent.estimators._knn import ross_mutual_information as ross_mutual_information
from jaxent.estimators._knn import transfer_entropy as transfer_entropy
from jaxent.estimators._multiplets import multiplets as multiplets
from jaxent.estimators._variational import donsker_varadhan_bound as donsker_varadhan_bound
from jaxent.estimators._variational import infonce_bound as infonce_bound
from jaxent.estimators._variational import nwj_bound as nwj_bound

__all__ = [
    "donsker_varadhan_bound",
    "entropy_from_counts",
    "gaussian_copula_conditional_mutual_information",
    "gaussian_copula_entropy",
    "gaussian_copula_mutual_information",
    "infonce_bound",
    "knn_kl_divergence",
    "kozachenko_leonenko_entropy",
    "ksg_conditional_mutual_information",
    "ksg_mutual_information",
    "multiplets",
    "nwj_bound",
    "ross_mutual_information",
    "transfer_entropy",
]

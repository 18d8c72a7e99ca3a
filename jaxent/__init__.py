"""jaxent: information measures for JAX.

Pure, ``jit``-compiled, ``vmap``-able functions for surprisal, entropy,
cross-entropy, KL divergence and their relatives. ``import jaxent as je``.
"""

# Namespaces: estimators from samples, optax-style losses, logistic regression.
from jaxent import estimators as estimators
from jaxent import feature_selection as feature_selection
from jaxent import logistic as logistic
from jaxent import losses as losses
from jaxent.categorical import bhattacharyya_coefficient as bhattacharyya_coefficient
from jaxent.categorical import bhattacharyya_distance as bhattacharyya_distance
from jaxent.categorical import chernoff_information as chernoff_information
from jaxent.categorical import chi_squared_divergence as chi_squared_divergence
from jaxent.categorical import cross_entropy as cross_entropy
from jaxent.categorical import entropy as entropy
from jaxent.categorical import hellinger_distance as hellinger_distance
from jaxent.categorical import js_divergence as js_divergence
from jaxent.categorical import kl_divergence as kl_divergence
from jaxent.categorical import renyi_divergence as renyi_divergence
from jaxent.categorical import renyi_entropy as renyi_entropy
from jaxent.categorical import total_variation as total_variation
from jaxent.categorical import tsallis_entropy as tsallis_entropy
from jaxent.checks import checked as checked
from jaxent.elementwise import binary_cross_entropy as binary_cross_entropy
from jaxent.elementwise import binary_entropy as binary_entropy
from jaxent.elementwise import binary_kl_divergence as binary_kl_divergence
from jaxent.elementwise import surprisal as surprisal
from jaxent.gaussian import gaussian_entropy as gaussian_entropy
from jaxent.gaussian import gaussian_kl_divergence as gaussian_kl_divergence
from jaxent.joint import conditional_entropy as conditional_entropy
from jaxent.joint import joint_entropy as joint_entropy
from jaxent.joint import mutual_information as mutual_information
from jaxent.joint import normalized_mutual_information as normalized_mutual_information
from jaxent.joint import pointwise_mutual_information as pointwise_mutual_information
from jaxent.joint import variation_of_information as variation_of_information
from jaxent.logits import cross_entropy_from_logits as cross_entropy_from_logits
from jaxent.logits import entropy_from_logits as entropy_from_logits
from jaxent.logits import kl_divergence_from_logits as kl_divergence_from_logits
from jaxent.multivariate import co_information as co_information
from jaxent.multivariate import conditional_mutual_information as conditional_mutual_information
from jaxent.multivariate import dual_total_correlation as dual_total_correlation
from jaxent.multivariate import o_information as o_information
from jaxent.multivariate import s_information as s_information
from jaxent.multivariate import total_correlation as total_correlation

__version__ = "0.1.0"

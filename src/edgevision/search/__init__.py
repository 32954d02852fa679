"""Architecture search: NASNet's and AmoebaNet's cell spaces, aging evolution (Real et al., AAAI
2019), an LSTM controller trained with PPO (Zoph et al., CVPR 2018), random search, trials on Ray
with a durable log, a face / non-face proxy task and a latency-aware objective.

Everything here sits above ``deploy`` and ``training`` (it builds plans to time children and
trains them); nothing below imports it.
"""

"""Fitting the simulator to measured records, and the information limits of a protocol.

Between pyecho.data and pyecho.learn: it uses the engines and the record readers, and the
learned models' predictions only as a fit's starting point (given by the caller).

- :mod:`pyecho.fit.space` -- a family's fitted parameters inside a dataset's prior
- :mod:`pyecho.fit.forward` -- the protocol's records at many points on common detuning draws, binned
- :mod:`pyecho.fit.error_model` -- noise, the detuning draw's scatter, the receiver's gains
- :mod:`pyecho.fit.problem` -- one record against one family: the residual and its Jacobian
- :mod:`pyecho.fit.limits` -- Cramér-Rao bounds and maps over a prior
"""

"""Measured echoes in: Bruker TopSpin, Varian/Agilent and NMRPipe time-domain files, via nmrglue.

:func:`read_acquisition` reads one experiment into an :class:`Acquisition`: the complex series M
at its own sample times, measured from the excitation pulse, with the digital filter's group
delay removed. :func:`to_model_grid` cuts and resamples it onto a learned model's grid
(t_k = k dt, k = 1 .. 3 n_tau, refocusing pulse at tau, echo at 2 tau), refusing in one line
when the dwell time, tau or the record's length cannot match the model. Phase and gain are left
as measured: the learning layer normalises them as in training.

Time origin
    Sample k of the record (0-based, after the group delay is removed) is taken at
    ``start_us + k * dwell_us`` after the excitation pulse; ``start_us`` defaults to 0 (the
    receiver opens with the excitation, as when the whole Hahn echo is acquired). A record that
    starts later (after a dead time, or after the refocusing pulse) says so with ``start_us``.

Group delay (Bruker, and NMRPipe files converted from Bruker)
    The digital filter delays the signal by GRPDLY dwell times: the record's point j holds the
    signal at ``(j - GRPDLY) * dwell``. pyecho removes it in the time domain by giving every
    point that time and dropping the points before t = 0 (the filter's start-up), so a
    fractional delay stays exact and is carried into the resampling. nmrglue's
    ``remove_digital_filter`` is not used: it shifts circularly through an FFT, which wraps the
    end of the record into its start (an echo record does not decay to zero at its end), and by
    default it floors the delay, leaving up to one dwell of error in the time origin.

Resampling
    A not-a-knot cubic spline (``scipy.interpolate.CubicSpline``) through the real and
    imaginary parts, separately before and after the refocusing pulse, so that the ideal
    pulse's jump in M is never smeared across it. On an echo sampled a fraction of a dwell off
    the model's grid it is over 100 times more accurate than linear interpolation (see
    docs/spectrometer.md). Where the grids coincide it returns the recorded samples.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import nmrglue as ng
import numpy as np
from scipy.interpolate import CubicSpline

from pyecho.errors import InputFileError, ParameterError

BRUKER = "bruker"
VARIAN = "varian"
NMRPIPE = "nmrpipe"
#: the formats read_acquisition understands
SOURCES = (BRUKER, VARIAN, NMRPIPE)

#: Bruker acqus delay array index read as tau (the Hahn-echo delay d6, seconds in the file)
BRUKER_TAU_DELAY = 6
#: Varian procpar parameter read as tau (seconds)
VARIAN_TAU_PARAMETER = "tau"
#: the dwell time may exceed the model's step by this relative amount (a rounded spectral width)
DWELL_TOLERANCE = 1e-3
#: tau may differ from the model's by this many model steps (the model's tau is n_tau * dt)
TAU_TOLERANCE_STEPS = 0.5
#: model samples may lie this many dwell times outside the record's samples on their side of
#: the refocusing pulse (extrapolated by the spline's end polynomial)
EXTRAPOLATE_DWELLS = 1.0
#: Bruker files are written in blocks of this many bytes per record
BRUKER_BLOCK_BYTES = 1024
#: NMRPipe header: 512 float32 values; FDFLTORDER (index 2) is this constant in file byte order
PIPE_HEADER_BYTES = 2048
PIPE_ORDER_CONSTANT = 2.345
#: Varian fid file header size in bytes
VARIAN_FILE_HEADER_BYTES = 32

_US_PER_S = 1e6


class SpectrometerFileError(InputFileError):
    """A spectrometer file cannot be read or cannot match the model; the message names the file and why."""


def _fail(path: Path | str, problem: str) -> SpectrometerFileError:
    return SpectrometerFileError(f"{path}: {problem}")


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a)  # own copy, so freezing never touches a caller's array
    a.flags.writeable = False
    return a


@dataclass(frozen=True)
class Acquisition:
    """One measured record (or several 1-D records of one experiment), ready for a model's grid.

    Attributes
    ----------
    t_us : ndarray (T,), float64
        Sample times after the excitation pulse (µs): ``start_us + (j - group_delay_points) *
        dwell_us`` for the kept record points j.
    M : ndarray (T,) or (A, T), complex128
        The complex series as recorded (no phase or gain change). (A, T) when the file holds A
        1-D records: a Bruker ``ser`` file or an arrayed Varian ``fid``; all share ``tau_us``.
    dwell_us : float
        Time between complex points (µs) = 1e6 / spectral width in Hz.
    tau_us : float or None
        Pulse spacing (µs): the caller's value if given, else the file's (see ``tau_origin``).
    source : {"bruker", "varian", "nmrpipe"}
    path : Path
        What was read (the experiment directory or the NMRPipe file).
    group_delay_points : float
        Digital-filter group delay removed, in dwell times (0 where the file has none).
    start_us : float
        Time of the first record point (after the group delay) after the excitation pulse (µs).
    tau_origin : str
        Where ``tau_us`` came from ("given", "acqus D6", "procpar tau") or why it is missing.
    """

    t_us: np.ndarray
    M: np.ndarray
    dwell_us: float
    tau_us: float | None
    source: str
    path: Path
    group_delay_points: float = 0.0
    start_us: float = 0.0
    tau_origin: str = "given"

    def __post_init__(self) -> None:
        object.__setattr__(self, "t_us", _frozen(np.asarray(self.t_us, dtype=np.float64)))
        object.__setattr__(self, "M", _frozen(np.asarray(self.M, dtype=np.complex128)))


# ----------------------------------------------------------------------------- format detection


def _pipe_header(path: Path) -> np.ndarray | None:
    """The NMRPipe header of ``path`` in native byte order, or None if it is not an NMRPipe file."""
    if not path.is_file() or path.stat().st_size < PIPE_HEADER_BYTES:
        return None
    fdata = ng.pipe.get_fdata(str(path))  # swaps bytes when FDFLTORDER says so
    if fdata[0] != 0.0 or not abs(float(fdata[2]) - PIPE_ORDER_CONSTANT) < 1e-4:
        return None
    return fdata


def spectrometer_format(path: str | Path) -> str | None:
    """Which spectrometer format ``path`` is ("bruker", "varian", "nmrpipe"), or None.

    A Bruker experiment directory holds ``acqus``; a Varian/Agilent ``.fid`` directory holds
    ``procpar``; the ``fid``/``ser`` file inside either also counts. Any other file is NMRPipe if
    its header carries NMRPipe's byte-order constant (whatever its suffix: .fid, .ft, ...).
    """
    p = Path(path)
    if p.is_dir():
        if (p / "acqus").is_file():
            return BRUKER
        if (p / "procpar").is_file():
            return VARIAN
        return None
    if p.name in ("fid", "ser") and (p.parent / "acqus").is_file():
        return BRUKER
    if p.name == "fid" and (p.parent / "procpar").is_file():
        return VARIAN
    return NMRPIPE if _pipe_header(p) is not None else None


# ----------------------------------------------------------------------------- readers


@dataclass(frozen=True)
class _Raw:
    """What a format reader found, before the group delay is removed and times are assigned."""

    path: Path  # the experiment directory or NMRPipe file
    data: np.ndarray  # (T,) or (A, T) complex, group-delay points included
    sw_hz: float  # spectral width: one complex point every 1 / sw_hz seconds
    group_delay_points: float
    tau_us: float | None  # from the file's parameters
    tau_origin: str  # where tau_us came from, or why there is none


def _check_size(path: Path, expected: int, announced: str) -> None:
    """SpectrometerFileError unless ``path`` holds the ``expected`` bytes its header announces
    (``announced``: what, in words)."""
    size = path.stat().st_size
    if size != expected:
        raise _fail(path, f"is {size} bytes but its header announces {announced} ({expected} bytes): truncated or "
                          "damaged")


def _nmrglue_read(vendor: str, path: Path, read):
    """``read()``, an nmrglue reader of ``path``: whatever it raises is one SpectrometerFileError."""
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 -- any unreadable file is one user error
        raise _fail(path, f"cannot read the {vendor} data ({exc})") from None


def _positive(path: Path, name: str, value) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise _fail(path, f"{name} = {value!r} is not a number") from None
    if not (math.isfinite(x) and x > 0):
        raise _fail(path, f"{name} = {value!r}; it must be a finite number > 0")
    return x


def bruker_group_delay(acqus: dict) -> float:
    """The digital filter's group delay (dwell times) from Bruker acquisition parameters.

    nmrglue's rule (``rm_dig_filter``): GRPDLY when > 0 (TopSpin 2 and later); otherwise the
    DSPFVS/DECIM table of firmware 10-13 (``nmrglue.bruker.bruker_dsp_table``); none for
    DSPFVS >= 14 without GRPDLY. pyecho adds: none for the analog filter (DIGMOD = 0) or where
    no DSPFVS is recorded. Unlike nmrglue's default the value is used unrounded.
    """
    grpdly = float(acqus.get("GRPDLY", -1))
    if grpdly > 0:
        return grpdly
    dspfvs = acqus.get("DSPFVS")
    if acqus.get("DIGMOD") == 0 or dspfvs is None or dspfvs >= 14:
        return 0.0
    table = ng.bruker.bruker_dsp_table
    decim = acqus.get("DECIM")
    if dspfvs not in table or decim not in table[dspfvs]:
        raise ValueError(f"no group delay is known for DSPFVS = {dspfvs}, DECIM = {decim} and GRPDLY is not set")
    return float(table[dspfvs][decim])


def _read_bruker(exp: Path):
    acqus_file = exp / "acqus"
    names = [n for n in ("fid", "ser") if (exp / n).is_file()]
    if not names:
        raise _fail(exp, "holds acqus but no fid or ser file")
    binary = exp / names[0]
    try:
        par = ng.bruker.read_acqus_file(str(exp))["acqus"]
    except Exception as exc:  # noqa: BLE001 -- any unreadable parameter file is one user error
        raise _fail(acqus_file, f"unreadable JCAMP-DX parameters ({exc})") from None
    for key in ("TD", "SW_h", "AQ_mod"):
        if key not in par:
            raise _fail(acqus_file, f"has no {key}")
    sw_hz = _positive(acqus_file, "SW_h", par["SW_h"])
    td = par["TD"]
    if not isinstance(td, int) or td < 4 or td % 2:
        raise _fail(acqus_file, f"TD = {td!r}; need an even number of real + imaginary values >= 4")
    aq_mod = par["AQ_mod"]
    if aq_mod not in (1, 3):
        raise _fail(acqus_file, f"AQ_mod = {aq_mod!r}: a real-only acquisition (qf/qseq) has no complex M(t); "
                                "need qsim (1) or DQD (3)")
    dtypa = par.get("DTYPA", 0)
    if dtypa not in (0, 2):
        raise _fail(acqus_file, f"DTYPA = {dtypa!r}; allowed 0 (int32) or 2 (float64)")
    value_bytes = 8 if dtypa == 2 else 4
    per_block = BRUKER_BLOCK_BYTES // value_bytes
    padded = -(-td // per_block) * per_block  # each record starts on a 1024-byte boundary
    size = binary.stat().st_size
    if size == td * value_bytes:
        n_records, record_values = 1, td
    elif size > 0 and size % (padded * value_bytes) == 0:
        n_records, record_values = size // (padded * value_bytes), padded
    else:
        raise _fail(binary, f"{size} bytes is not a whole number of records of TD = {td} "
                            f"{'float64' if dtypa == 2 else 'int32'} values (truncated, or acqus does not match)")
    shape = (record_values // 2,) if n_records == 1 else (n_records, record_values // 2)
    try:
        group_delay = bruker_group_delay(par)
    except ValueError as exc:
        raise _fail(acqus_file, str(exc)) from None
    _, data = _nmrglue_read("Bruker", exp, partial(ng.bruker.read, str(exp), bin_file=binary.name, shape=shape,
                                                   cplex=True, read_pulseprogram=False, read_procs=False))
    delays = par.get("D", [])
    tau_s = float(delays[BRUKER_TAU_DELAY]) if len(delays) > BRUKER_TAU_DELAY else 0.0
    data = data[..., : td // 2]  # the rest of the last block is padding
    if tau_s > 0:
        return _Raw(exp, data, sw_hz, group_delay, tau_s * _US_PER_S, f"acqus D{BRUKER_TAU_DELAY}")
    return _Raw(exp, data, sw_hz, group_delay, None, f"acqus D{BRUKER_TAU_DELAY} is not set")


def _read_varian(exp: Path):
    fid = exp / "fid"
    if not fid.is_file():
        raise _fail(exp, "holds procpar but no fid file")
    size = fid.stat().st_size
    if size < VARIAN_FILE_HEADER_BYTES:
        raise _fail(fid, f"is {size} bytes, shorter than the {VARIAN_FILE_HEADER_BYTES}-byte file header")
    with open(fid, "rb") as f:
        head = ng.varian.fileheader2dic(ng.varian.get_fileheader(f))
    _check_size(fid, VARIAN_FILE_HEADER_BYTES + head["nblocks"] * head["bbytes"],
                f"{head['nblocks']} blocks of {head['bbytes']} bytes")
    dic, data = _nmrglue_read("Varian", exp, partial(ng.varian.read, str(exp)))
    procpar = dic["procpar"]
    if "sw" not in procpar:
        raise _fail(exp / "procpar", "has no sw (spectral width)")
    sw_hz = _positive(exp / "procpar", "sw", procpar["sw"]["values"][0])
    if not np.iscomplexobj(data) or data.ndim > 2:
        raise _fail(exp, f"holds data of shape {data.shape}; pyecho reads complex 1-D records only")
    if VARIAN_TAU_PARAMETER not in procpar:
        return _Raw(exp, data, sw_hz, 0.0, None, f"procpar has no {VARIAN_TAU_PARAMETER}")
    listed = procpar[VARIAN_TAU_PARAMETER]["values"]
    try:
        values = {float(v) for v in listed}
    except ValueError:
        raise _fail(exp / "procpar", f"{VARIAN_TAU_PARAMETER} = {listed!r} is not a number") from None
    if len(values) > 1:
        raise _fail(exp / "procpar", f"{VARIAN_TAU_PARAMETER} is arrayed ({len(values)} values); "
                                     "pyecho reads records that share one tau")
    tau_s = values.pop() if values else 0.0
    if not tau_s > 0:
        return _Raw(exp, data, sw_hz, 0.0, None, f"procpar {VARIAN_TAU_PARAMETER} is not set")
    return _Raw(exp, data, sw_hz, 0.0, tau_s * _US_PER_S, f"procpar {VARIAN_TAU_PARAMETER}")


def _read_pipe(path: Path):
    fdata = _pipe_header(path)
    header = ng.pipe.fdata2dic(fdata)
    if header["FDDIMCOUNT"] != 1:
        raise _fail(path, f"is a {int(header['FDDIMCOUNT'])}-D NMRPipe file; pyecho reads 1-D NMRPipe files")
    if header["FDF2FTFLAG"] != 0:
        raise _fail(path, "is a frequency-domain NMRPipe spectrum; give the time-domain FID")
    if header["FDF2QUADFLAG"] != 0:
        raise _fail(path, "holds real-only data; pyecho needs the complex (quadrature) series")
    sw_hz = _positive(path, "FDF2SW", header["FDF2SW"])
    n = int(header["FDSIZE"])
    _check_size(path, PIPE_HEADER_BYTES + 8 * n, f"{n} complex float32 points")
    _, data = _nmrglue_read("NMRPipe", path, partial(ng.pipe.read, str(path)))
    tdsize = int(header["FDF2TDSIZE"])
    if 0 < tdsize < data.shape[-1]:
        data = data[..., :tdsize]  # points past the acquired size are zero-fill, not signal
    # FDDMXFLAG -1 turns the correction off; otherwise a converted Bruker FID still holds its
    # group delay FDDMXVAL (NMRPipe removes it only at the Fourier transform).
    group_delay = float(header["FDDMXVAL"]) if header["FDDMXFLAG"] != -1 and header["FDDMXVAL"] > 0 else 0.0
    return _Raw(path, data, sw_hz, group_delay, None, "NMRPipe files do not record it")


_READERS = {BRUKER: _read_bruker, VARIAN: _read_varian, NMRPIPE: _read_pipe}


def _check_time(name: str, value, *, positive: bool) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x) or (x <= 0 if positive else x < 0):
        raise ParameterError(f"{name}: got {value!r}; must be a finite number {'> 0' if positive else '>= 0'} (µs)")
    return x


def read_acquisition(path: str | Path, *, tau_us: float | None = None, start_us: float = 0.0) -> Acquisition:
    """Read a Bruker, Varian/Agilent or NMRPipe time-domain experiment.

    Parameters
    ----------
    path : str or Path
        A Bruker experiment directory (``acqus`` + ``fid``/``ser``, or that ``fid``/``ser``), a
        Varian/Agilent directory (``procpar`` + ``fid``, or that ``fid``), or a 1-D time-domain
        NMRPipe file.
    tau_us : float, optional
        Pulse spacing tau (µs). Wins over the file's (Bruker D6, Varian ``tau``).
    start_us : float, default 0
        Time of the record's first point (after the group delay) after the excitation pulse
        (µs); 0 when the receiver opens with the excitation.

    Returns
    -------
    Acquisition

    Raises
    ------
    SpectrometerFileError
        Missing, unknown, truncated or unreadable input (one line naming the file).
    ParameterError
        ``tau_us`` or ``start_us`` out of range.
    """
    p = Path(path)
    if tau_us is not None:
        tau_us = _check_time("tau_us", tau_us, positive=True)
    start_us = _check_time("start_us", start_us, positive=False)
    if not p.exists():
        raise _fail(p, "no such file or directory")
    source = spectrometer_format(p)
    if source is None:
        raise _fail(p, "not a Bruker experiment directory (acqus + fid/ser), a Varian/Agilent directory "
                       "(procpar + fid) or an NMRPipe file")
    if p.is_file() and source != NMRPIPE:
        p = p.parent
    raw = _READERS[source](p)
    M = np.asarray(raw.data, dtype=np.complex128)
    if not np.all(np.isfinite(M)):
        raise _fail(raw.path, "the record contains NaN or infinite values")
    g = raw.group_delay_points
    first = math.ceil(g - 1e-9)  # points before t = 0 are the filter's start-up
    if M.shape[-1] - first < 2:
        raise _fail(raw.path, f"holds {M.shape[-1]} points, too few after its {g:g}-point group delay")
    dwell_us = _US_PER_S / raw.sw_hz
    return Acquisition(
        t_us=start_us + (np.arange(first, M.shape[-1]) - g) * dwell_us,
        M=M[..., first:],
        dwell_us=dwell_us,
        tau_us=raw.tau_us if tau_us is None else tau_us,
        source=source,
        path=raw.path,
        group_delay_points=g,
        start_us=start_us,
        tau_origin=raw.tau_origin if tau_us is None else "given",
    )


# ----------------------------------------------------------------------------- onto the model grid


def _model_step(t_us_model: np.ndarray) -> float:
    t = t_us_model
    if t.ndim != 1 or t.size < 2 or not np.all(np.isfinite(t)):
        raise ValueError(f"t_us_model must be a finite 1-D time grid with >= 2 samples; got shape {t.shape}")
    steps = np.diff(t)
    dt = float(steps[0])
    if not (dt > 0 and np.allclose(steps, dt, rtol=1e-6, atol=0)):
        raise ValueError("t_us_model must be uniform and increasing (t_k = k dt)")
    return dt


def to_model_grid(
    acq: Acquisition, *, t_us_model, tau_us_model: float, pulse_times_us=None, tau_us: float | None = None
) -> np.ndarray:
    """Resample a record onto a model's time grid (one measurement of its protocol).

    Parameters
    ----------
    acq : Acquisition
    t_us_model : array (T_model,)
        The model's sample times (µs after the excitation), uniform: t_k = k dt.
    tau_us_model : float
        The model's pulse spacing tau (µs), n_tau * dt.
    pulse_times_us : sequence of float, optional
        The model's refocusing-pulse times (µs): tau for a Hahn echo (the default), tau, 3 tau,
        ... for a CPMG or CP train. The record is resampled between consecutive pulses, never
        across one.
    tau_us : float, optional
        The record's tau (µs); wins over ``acq.tau_us``.

    Returns
    -------
    ndarray (T_model,) or (A, T_model), complex128
        M on the model's grid; phase and gain as recorded. Model samples before the record's
        first sample in a segment (more than ``EXTRAPOLATE_DWELLS`` dwell times before it: a
        receiver's dead time, ``start_us``) are NaN: missing, for the model to accept within
        its own dead time or refuse.

    Raises
    ------
    SpectrometerFileError (one line naming the file) when
        * the dwell time exceeds the model's step by more than ``DWELL_TOLERANCE`` (relative):
          the record cannot resolve the model's grid;
        * tau is unknown, or differs from the model's by more than ``TAU_TOLERANCE_STEPS`` steps;
        * in a segment between pulses the record ends before the model's last sample there
          (by more than ``EXTRAPOLATE_DWELLS`` dwell times), or holds fewer than two samples.
    """
    t_model = np.asarray(t_us_model, dtype=np.float64)
    dt = _model_step(t_model)
    tau_model = float(tau_us_model)
    pulses = [tau_model] if pulse_times_us is None else [float(t) for t in pulse_times_us]
    if not all(t_model[0] <= p < t_model[-1] for p in pulses):
        raise ValueError(f"pulse times {pulses} lie outside the model grid {t_model[0]:g}-{t_model[-1]:g} µs")
    name, dwell = acq.path, acq.dwell_us
    if dwell > dt * (1 + DWELL_TOLERANCE):
        raise _fail(name, f"dwell time {dwell:.6g} µs (spectral width {_US_PER_S / dwell:.8g} Hz) is coarser than the "
                          f"model's step {dt:.6g} µs; the record cannot resolve the model's grid "
                          f"(need dwell <= step, within {DWELL_TOLERANCE:.1%})")
    if tau_us is not None:
        tau, origin = _check_time("tau_us", tau_us, positive=True), "given"
    else:
        tau, origin = acq.tau_us, acq.tau_origin
    if tau is None:
        raise _fail(name, f"tau is unknown ({origin}); give it with --tau-us")
    if abs(tau - tau_model) > TAU_TOLERANCE_STEPS * dt:
        raise _fail(name, f"tau = {tau:g} µs ({origin}) but the model was trained with tau = {tau_model:g} µs "
                          f"(allowed difference {TAU_TOLERANCE_STEPS * dt:g} µs, half its step)")
    out = np.full(acq.M.shape[:-1] + t_model.shape, np.nan + 1j * np.nan, dtype=np.complex128)
    reach = EXTRAPOLATE_DWELLS * dwell
    # the record's pulses sit at its own tau's multiples, the model's at the model's
    record_pulses = [p * tau / tau_model for p in pulses]
    bounds_model = [-np.inf, *pulses, np.inf]
    bounds_record = [-np.inf, *record_pulses, np.inf]
    for i in range(len(pulses) + 1):
        m_sel = (t_model > bounds_model[i] + 1e-9 * dt) & (t_model <= bounds_model[i + 1] + 1e-9 * dt)
        r_sel = (acq.t_us > bounds_record[i] + 1e-9 * dwell) & (acq.t_us <= bounds_record[i + 1] + 1e-9 * dwell)
        if not m_sel.any():
            continue
        want = t_model[m_sel]
        have = acq.t_us[r_sel]
        where = "before the first pulse" if i == 0 else f"after pulse {i} (at {pulses[i - 1]:g} µs)"
        if have.size < 2 or want[-1] > have[-1] + reach:
            got = f"covers {have[0]:.3f}-{have[-1]:.3f} µs" if have.size else "has no sample"
            raise _fail(name, f"{where} the record {got} but the model needs up to {want[-1]:.3f} µs (times after "
                              f"the excitation; the record starts at start_us = {acq.start_us:g} µs)")
        reached = want >= have[0] - reach  # earlier model samples: missing (a dead time)
        idx = np.flatnonzero(m_sel)[reached]
        out[..., idx] = CubicSpline(have, acq.M[..., r_sel], axis=-1)(want[reached])
    return out

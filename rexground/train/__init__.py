"""Training of the text-conditioned grounding network (torch). Nothing on the inference path imports this
package except ``config``, ``intensity`` and ``anatomy_channels``, which are torch-free."""
